"""The audit trail: append-only rows in ``audit_log``, each hash-chained to the one before.

Writing (:func:`append_audit`) works inside the caller's transaction, so a mutation and its
audit row commit (or roll back) together::

    async with pool.acquire() as conn, conn.transaction():
        ...  # the change itself
        await append_audit(conn, AuditEntry(action="mission.cancel", ...))  # last, see below

Chain: ``hash = sha256(prev_hash || canonical_json(row))`` where ``prev_hash`` is the hash
of the row with the next-lower id (empty for the first row) and the canonical JSON covers
every column but the two hashes (``id`` and ``at`` included); ``details`` enters as
PostgreSQL's own text form of the stored ``jsonb`` so the hash survives the jsonb round
trip. Writers serialise on a transaction-scoped advisory lock (:data:`AUDIT_LOCK_KEY`), so
two writers can never hang rows off the same predecessor; the lock is held until the
caller's transaction ends, so append the audit row as the *last* statement of a
transaction. Transactions must use READ COMMITTED (PostgreSQL's default): a snapshot taken
before the lock could miss the newest row and fork the chain, so other levels are refused.

:func:`verify_chain` re-computes every hash in id order. Tampering with a row's contents
shows at that row; deleting a row shows at the row after it. Removing the newest rows
leaves a shorter but valid chain: compare ``ChainReport.head_hash`` with a copy kept
elsewhere to detect that.
"""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import structlog

from dispatcher.storage.db import Conn

log = structlog.get_logger(__name__)

#: ``pg_advisory_xact_lock`` key serialising audit writers (ASCII "fltdaudt").
AUDIT_LOCK_KEY = 0x666C7464_61756474


class AuditError(RuntimeError):
    """An audit row cannot be written safely (e.g. wrong transaction isolation level)."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited action, as the caller describes it (id, time and hashes are added on write).

    ``details`` must be JSON-serialisable; UUIDs, datetimes, enums and Decimals are turned
    into strings. Put old and new values there for changes (``{"old": ..., "new": ...}``).
    """

    action: str
    resource_type: str
    resource_id: str | None
    success: bool
    facility_id: uuid.UUID | None = None
    actor_token_id: uuid.UUID | None = None
    actor_role: str | None = None
    source: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ChainReport:
    """Result of :func:`verify_chain`."""

    ok: bool
    rows_checked: int
    first_bad_id: int | None
    reason: str | None
    #: Id and hex hash of the last row that verified (the chain head when ``ok``).
    last_id: int | None = None
    head_hash: str | None = None


def _json_default(value: Any) -> Any:
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"audit details: {type(value).__name__} is not JSON-serialisable")


def details_json(details: Mapping[str, Any]) -> str:
    """``details`` as JSON text, with the conversions :class:`AuditEntry` documents."""
    return json.dumps(dict(details), default=_json_default, allow_nan=False, ensure_ascii=False)


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def canonical_row(
    *,
    id: int,
    at: datetime,
    facility_id: uuid.UUID | None,
    actor_token_id: uuid.UUID | None,
    actor_role: str | None,
    action: str,
    resource_type: str,
    resource_id: str | None,
    details_text: str,
    source: str | None,
    success: bool,
    reason: str | None,
) -> bytes:
    """The bytes a row's hash covers: sorted-key compact JSON of every column but the hashes.

    ``details_text`` is PostgreSQL's text output of the stored jsonb (``details::text``).
    """
    doc = {
        "id": id,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "facility_id": _opt_str(facility_id),
        "actor_token_id": _opt_str(actor_token_id),
        "actor_role": actor_role,
        "action": action,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "details": details_text,
        "source": source,
        "success": success,
        "reason": reason,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def chain_hash(prev_hash: bytes | None, canonical: bytes) -> bytes:
    """``sha256(prev_hash || canonical)``; the first row has no ``prev_hash``."""
    return hashlib.sha256((prev_hash or b"") + canonical).digest()


async def append_audit(conn: Conn, entry: AuditEntry) -> int:
    """Append ``entry`` to the chain and return its id.

    Runs in ``conn``'s current transaction when there is one (the row commits with the
    caller's change), else in a transaction of its own.
    """
    if conn.is_in_transaction():
        return await _append(conn, entry)
    async with conn.transaction():
        return await _append(conn, entry)


async def _append(conn: Conn, entry: AuditEntry) -> int:
    text = details_json(entry.details)
    await conn.execute("SELECT pg_advisory_xact_lock($1)", AUDIT_LOCK_KEY)
    # A separate statement from the lock, so its snapshot includes the newest committed row.
    head = await conn.fetchrow(
        """
        SELECT current_setting('transaction_isolation') AS isolation,
               (SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1) AS prev_hash,
               nextval(pg_get_serial_sequence('audit_log', 'id')) AS id,
               clock_timestamp() AS at,
               $1::text::jsonb::text AS details_text
        """,
        text,
    )
    assert head is not None
    if head["isolation"] != "read committed":
        raise AuditError(
            f"append_audit needs READ COMMITTED, the transaction uses {head['isolation']}"
        )
    prev_hash: bytes | None = head["prev_hash"]
    row_id: int = head["id"]
    at: datetime = head["at"]
    details_text: str = head["details_text"]
    digest = chain_hash(
        prev_hash,
        canonical_row(
            id=row_id,
            at=at,
            facility_id=entry.facility_id,
            actor_token_id=entry.actor_token_id,
            actor_role=entry.actor_role,
            action=entry.action,
            resource_type=entry.resource_type,
            resource_id=entry.resource_id,
            details_text=details_text,
            source=entry.source,
            success=entry.success,
            reason=entry.reason,
        ),
    )
    await conn.execute(
        """
        INSERT INTO audit_log (id, at, facility_id, actor_token_id, actor_role, action,
                               resource_type, resource_id, details, source, success, reason,
                               prev_hash, hash)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10, $11, $12, $13, $14)
        """,
        row_id,
        at,
        entry.facility_id,
        entry.actor_token_id,
        entry.actor_role,
        entry.action,
        entry.resource_type,
        entry.resource_id,
        details_text,
        entry.source,
        entry.success,
        entry.reason,
        prev_hash,
        digest,
    )
    return row_id


async def write_audit(pool: asyncpg.Pool, entry: AuditEntry) -> int:
    """Append ``entry`` in a transaction of its own (for refusals and actions with no DB change)."""
    async with pool.acquire() as conn:
        return await append_audit(conn, entry)


_VERIFY_SQL = """
SELECT id, at, facility_id, actor_token_id, actor_role, action, resource_type, resource_id,
       details::text AS details_text, source, success, reason, prev_hash, hash
FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2
"""


async def verify_chain(pool: asyncpg.Pool, *, batch: int = 5000) -> ChainReport:
    """Re-compute the chain in id order, ``batch`` rows per query; stop at the first bad row."""
    if batch < 1:
        raise ValueError("batch must be positive")
    prev_hash: bytes | None = None
    prev_id: int | None = None
    checked = 0
    async with pool.acquire() as conn:
        while True:
            rows = await conn.fetch(_VERIFY_SQL, prev_id or 0, batch)
            if not rows:
                break
            for row in rows:
                checked += 1
                problem = _check_row(row, prev_id, prev_hash)
                if problem is not None:
                    log.warning("audit.chain_broken", id=row["id"], reason=problem)
                    return ChainReport(
                        ok=False,
                        rows_checked=checked,
                        first_bad_id=row["id"],
                        reason=problem,
                        last_id=prev_id,
                        head_hash=prev_hash.hex() if prev_hash else None,
                    )
                prev_id, prev_hash = row["id"], row["hash"]
    return ChainReport(
        ok=True,
        rows_checked=checked,
        first_bad_id=None,
        reason=None,
        last_id=prev_id,
        head_hash=prev_hash.hex() if prev_hash else None,
    )


def _check_row(row: asyncpg.Record, prev_id: int | None, prev_hash: bytes | None) -> str | None:
    """Why ``row`` breaks the chain, or None when it verifies."""
    if row["prev_hash"] != prev_hash:
        if prev_id is None:
            return (
                "prev_hash is set but no earlier row exists: "
                "the first row(s) of the log were deleted"
            )
        return (
            f"prev_hash does not match the hash of the preceding row (id {prev_id}): "
            "a row between them was deleted, or the preceding row was rewritten"
        )
    expected = chain_hash(
        prev_hash,
        canonical_row(
            id=row["id"],
            at=row["at"],
            facility_id=row["facility_id"],
            actor_token_id=row["actor_token_id"],
            actor_role=row["actor_role"],
            action=row["action"],
            resource_type=row["resource_type"],
            resource_id=row["resource_id"],
            details_text=row["details_text"],
            source=row["source"],
            success=row["success"],
            reason=row["reason"],
        ),
    )
    if row["hash"] != expected:
        return "hash does not match the row's contents: the row was altered after it was written"
    return None
