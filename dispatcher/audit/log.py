"""The audit trail: append-only rows in ``audit_log``, hash-chained shortly after they commit.

Writing (:func:`append_audit`) works inside the caller's transaction, so a mutation and its
audit row commit (or roll back) together::

    async with pool.acquire() as conn, conn.transaction():
        ...  # the change itself
        await append_audit(conn, AuditEntry(action="mission.cancel", ...))

It is one plain ``INSERT``: no lock, no read of the chain, so audited requests never wait
for each other. The row is inserted *unsealed* (``seq``, ``prev_hash`` and ``hash`` NULL).

Sealing (:func:`seal_pending`, run every :data:`SEAL_INTERVAL_S` by :class:`AuditSealer` in
the daemon, and by ``fleetd audit verify`` before it checks) chains committed unsealed rows
in one short transaction: it takes the try-lock :data:`AUDIT_SEAL_LOCK_KEY` (another sealer,
in this or another process, holding it means "not now": 0 rows), reads the chain head,
picks the unsealed rows in id order and gives them the next chain positions ``seq`` and
their hashes, all in one ``UPDATE``. The chain runs in ``seq`` (seal) order, not id order:
ids are taken at insert and commit out of order, so a row with a lower id may commit, and
be sealed, after a higher one. Unsealed rows are found by ``seq IS NULL``, never by id
range, so a late committer is sealed by the next round, never skipped; a rolled-back
append leaves a gap in the ids only, which the chain does not care about.

Chain: ``hash = sha256(prev_hash || canonical_json(row))`` where ``prev_hash`` is the hash
of the row at ``seq - 1`` (NULL for seq 1) and the canonical JSON is sorted-key compact JSON
(:func:`canonical_row`) of every column but ``prev_hash``, ``hash`` and ``hash_format``:
``id``, ``seq``, ``at`` (UTC ISO 8601, microseconds), ``facility_id``, ``actor_token_id``,
``actor_role``, ``action``, ``resource_type``, ``resource_id``, ``details``, ``source``,
``success``, ``reason``. ``details`` enters as PostgreSQL's own text form of the stored
``jsonb`` so the hash survives the jsonb round trip. Rows sealed before migration 0005
(``hash_format = 1``) were chained by the old writer in id order with the same form minus
``seq``; they keep those hashes and are verified with that form (see the migration).

The database guards the table (trigger ``audit_log_append_only``): rows are always inserted
unsealed (chain columns in an INSERT are cleared), the only UPDATE allowed sets the chain
columns of an unsealed row and changes nothing else, DELETE and TRUNCATE are refused.

:func:`verify_chain` re-computes every sealed row's hash in seq order. Tampering with a
row's contents shows at that row; deleting a row shows at the row after it (a seq gap and a
``prev_hash`` that matches nothing). Removing the newest rows leaves a shorter but valid
chain: compare ``ChainReport.head_hash`` with a copy kept elsewhere to detect that. Rows not
sealed yet are not covered by the chain (they are counted in ``ChainReport.unsealed``); the
window is normally about :data:`SEAL_INTERVAL_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import structlog

from dispatcher.metrics import AUDIT_ROWS_SEALED, AUDIT_SEAL_FAILURES
from dispatcher.retry import Backoff, BackoffPolicy
from dispatcher.storage.db import Conn

log = structlog.get_logger(__name__)

#: ``pg_try_advisory_xact_lock`` key: one sealer at a time per database (ASCII "fltdaudt").
AUDIT_SEAL_LOCK_KEY = 0x666C7464_61756474

#: How often :class:`AuditSealer` looks for unsealed rows when it has caught up.
SEAL_INTERVAL_S = 0.2

#: Rows sealed per transaction by default.
SEAL_BATCH = 500

#: ``hash_format`` of rows sealed by :func:`seal_pending` (1: before migration 0005, no seq).
HASH_FORMAT = 2


class AuditError(RuntimeError):
    """The audit chain cannot be worked on safely (e.g. sealing inside a caller's transaction)."""


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
    #: Id, chain position and hex hash of the last row that verified (the head when ``ok``).
    last_id: int | None = None
    head_hash: str | None = None
    last_seq: int | None = None
    #: Rows committed but not sealed yet when the check ended (not covered by it).
    unsealed: int = 0


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
    seq: int | None = None,
) -> bytes:
    """The bytes a row's hash covers: sorted-key compact JSON of every column but the hashes.

    ``details_text`` is PostgreSQL's text output of the stored jsonb (``details::text``).
    ``seq`` is the row's chain position; None gives the form of ``hash_format = 1`` rows
    (sealed before migration 0005), which has no ``seq`` key at all.
    """
    doc: dict[str, object] = {
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
    if seq is not None:
        doc["seq"] = seq
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def chain_hash(prev_hash: bytes | None, canonical: bytes) -> bytes:
    """``sha256(prev_hash || canonical)``; the first row has no ``prev_hash``."""
    return hashlib.sha256((prev_hash or b"") + canonical).digest()


def _row_canonical(row: asyncpg.Record, seq: int | None) -> bytes:
    """:func:`canonical_row` of a fetched row (columns named as in the table, ``details_text``)."""
    return canonical_row(
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
        seq=seq,
    )


# Writing ----------------------------------------------------------------------------------

_INSERT_SQL = """
INSERT INTO audit_log (at, facility_id, actor_token_id, actor_role, action, resource_type,
                       resource_id, details, source, success, reason)
VALUES (clock_timestamp(), $1, $2, $3, $4, $5, $6, $7::text::jsonb, $8, $9, $10)
RETURNING id
"""


async def append_audit(conn: Conn, entry: AuditEntry) -> int:
    """Insert ``entry`` (unsealed) and return its id: one round trip, no lock.

    Runs in ``conn``'s current transaction when there is one (the row commits or rolls back
    with the caller's change), else as a statement of its own. Any isolation level works.
    """
    row_id: int = await conn.fetchval(
        _INSERT_SQL,
        entry.facility_id,
        entry.actor_token_id,
        entry.actor_role,
        entry.action,
        entry.resource_type,
        entry.resource_id,
        details_json(entry.details),
        entry.source,
        entry.success,
        entry.reason,
    )
    return row_id


_INSERT_MANY_SQL = """
INSERT INTO audit_log (at, facility_id, actor_token_id, actor_role, action, resource_type,
                       resource_id, details, source, success, reason)
SELECT clock_timestamp(), r.facility_id, r.actor_token_id, r.actor_role, r.action,
       r.resource_type, r.resource_id, r.details::jsonb, r.source, r.success, r.reason
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::text[], $8::text[], $9::bool[], $10::text[])
     WITH ORDINALITY AS r(facility_id, actor_token_id, actor_role, action, resource_type,
                          resource_id, details, source, success, reason, n)
ORDER BY r.n
"""


async def append_audit_many(conn: Conn, entries: Sequence[AuditEntry]) -> int:
    """Insert ``entries`` (unsealed, ids in their order) in one statement: one round trip
    whatever their number. Same transaction rules as :func:`append_audit`; their number."""
    if not entries:
        return 0
    await conn.execute(
        _INSERT_MANY_SQL,
        [e.facility_id for e in entries],
        [e.actor_token_id for e in entries],
        [e.actor_role for e in entries],
        [e.action for e in entries],
        [e.resource_type for e in entries],
        [e.resource_id for e in entries],
        [details_json(e.details) for e in entries],
        [e.source for e in entries],
        [e.success for e in entries],
        [e.reason for e in entries],
    )
    return len(entries)


async def write_audit(pool: asyncpg.Pool, entry: AuditEntry) -> int:
    """Append ``entry`` in a transaction of its own (for refusals and actions with no DB change)."""
    async with pool.acquire() as conn:
        return await append_audit(conn, entry)


# Sealing ----------------------------------------------------------------------------------

_HEAD_SQL = "SELECT seq, hash FROM audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1"

_PENDING_SQL = """
SELECT id, at, facility_id, actor_token_id, actor_role, action, resource_type, resource_id,
       details::text AS details_text, source, success, reason
FROM audit_log WHERE seq IS NULL ORDER BY id LIMIT $1 FOR UPDATE
"""

_SEAL_SQL = """
UPDATE audit_log AS a
SET seq = s.seq, prev_hash = s.prev_hash, hash = s.hash
FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[]) AS s(id, seq, prev_hash, hash)
WHERE a.id = s.id AND a.seq IS NULL
"""


@contextlib.asynccontextmanager
async def _connection(pool_or_conn: asyncpg.Pool | Conn) -> AsyncIterator[Conn]:
    if isinstance(pool_or_conn, asyncpg.Pool):
        async with pool_or_conn.acquire() as conn:
            yield conn
    else:
        yield pool_or_conn


async def _seal_once(conn: Conn, limit: int) -> int | None:
    """Seal up to ``limit`` rows; the number sealed, or None when another sealer holds the lock."""
    if limit < 1:
        raise ValueError("limit must be positive")
    if conn.is_in_transaction():
        # The lock and the sealed rows would be held until the caller commits, and a
        # REPEATABLE READ snapshot could miss the newest head and fork the chain.
        raise AuditError("seal_pending needs a connection outside any transaction")
    # Cheap check first: an idle sealer costs one index probe, no transaction.
    if await conn.fetchval("SELECT 1 FROM audit_log WHERE seq IS NULL LIMIT 1") is None:
        return 0
    async with conn.transaction(isolation="read_committed"):
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", AUDIT_SEAL_LOCK_KEY):
            return None
        # Separate statements from the lock: in READ COMMITTED each takes a new snapshot,
        # so they see everything the previous lock holder committed.
        head = await conn.fetchrow(_HEAD_SQL)
        rows = await conn.fetch(_PENDING_SQL, limit)
        if not rows:
            return 0
        seq: int = head["seq"] if head else 0
        prev: bytes | None = head["hash"] if head else None
        ids: list[int] = []
        seqs: list[int] = []
        prevs: list[bytes | None] = []
        hashes: list[bytes] = []
        for row in rows:
            seq += 1
            digest = chain_hash(prev, _row_canonical(row, seq))
            ids.append(row["id"])
            seqs.append(seq)
            prevs.append(prev)
            hashes.append(digest)
            prev = digest
        status = await conn.execute(_SEAL_SQL, ids, seqs, prevs, hashes)
        if status != f"UPDATE {len(rows)}":
            raise AuditError(f"sealing {len(rows)} audit rows updated {status!r}; rolled back")
    AUDIT_ROWS_SEALED.inc(len(rows))
    return len(rows)


async def seal_pending(pool_or_conn: asyncpg.Pool | Conn, *, limit: int = SEAL_BATCH) -> int:
    """Chain up to ``limit`` committed unsealed rows (id order) in one short transaction.

    Returns how many were sealed: 0 when there were none or another sealer holds the lock
    (it does not wait). ``pool_or_conn`` must not be in a transaction.
    """
    async with _connection(pool_or_conn) as conn:
        return await _seal_once(conn, limit) or 0


async def seal_all(
    pool_or_conn: asyncpg.Pool | Conn, *, limit: int = SEAL_BATCH, lock_wait_s: float = 5.0
) -> int:
    """Seal until no committed row is left unsealed; return how many rows this call sealed.

    While another sealer holds the lock it retries for up to ``lock_wait_s`` (that sealer
    is sealing the same rows), then gives up quietly: rows left are counted by verify.
    """
    total = 0
    deadline = time.monotonic() + lock_wait_s
    async with _connection(pool_or_conn) as conn:
        while True:
            sealed = await _seal_once(conn, limit)
            if sealed is None:
                if time.monotonic() >= deadline:
                    return total
                await asyncio.sleep(0.05)
                continue
            total += sealed
            if sealed < limit:
                return total


class AuditSealer:
    """Seals audit rows in the background: ``await sealer.run()``; ``await sealer.close()``.

    Every ``interval_s`` it seals what committed since; after a full batch it goes again at
    once. A failure is logged (``audit.seal_failed``), counted
    (``fleetd_audit_seal_failures_total``) and retried after a jittered back-off that grows up to
    ``max_backoff_s`` (:mod:`dispatcher.retry`); the loop itself never ends on an error.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        interval_s: float = SEAL_INTERVAL_S,
        batch: int = SEAL_BATCH,
        max_backoff_s: float = 5.0,
    ) -> None:
        if interval_s <= 0 or batch < 1:
            raise ValueError("interval_s and batch must be positive")
        self._pool = pool
        self._interval_s = interval_s
        self._batch = batch
        self._max_backoff_s = max(max_backoff_s, interval_s)

    async def run(self) -> None:
        backoff = Backoff(BackoffPolicy(base_s=self._interval_s, cap_s=self._max_backoff_s))
        while True:
            try:
                sealed = await seal_pending(self._pool, limit=self._batch)
            except Exception as exc:
                AUDIT_SEAL_FAILURES.inc()
                delay = backoff.next_delay()
                log.warning("audit.seal_failed", error=_describe(exc), retry_in_s=round(delay, 3))
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            if sealed >= self._batch:
                await asyncio.sleep(0)  # let others run between back-to-back batches
                continue
            await asyncio.sleep(self._interval_s)

    async def close(self) -> int:
        """Final seal at shutdown (after the API stopped, before the pool closes).

        Returns the rows sealed; failures are logged and counted, not raised, so the rest
        of the shutdown goes on (whatever is left is sealed by the next sealer to run).
        """
        try:
            # A lock held for long means another sealer is at work; don't spend the grace
            # period of the shutdown waiting for it.
            sealed = await seal_all(self._pool, limit=self._batch, lock_wait_s=1.0)
        except Exception as exc:
            AUDIT_SEAL_FAILURES.inc()
            log.warning("audit.seal_failed", error=_describe(exc), final=True)
            return 0
        if sealed:
            log.info("audit.sealed_at_shutdown", rows=sealed)
        return sealed


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


# Verifying --------------------------------------------------------------------------------

_VERIFY_SQL = """
SELECT id, seq, hash_format, at, facility_id, actor_token_id, actor_role, action,
       resource_type, resource_id, details::text AS details_text, source, success, reason,
       prev_hash, hash
FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2
"""


@dataclass(slots=True)
class _Prev:
    """The last row that verified."""

    id: int | None = None
    seq: int = 0
    hash: bytes | None = None
    format: int = 1


async def verify_chain(pool: asyncpg.Pool, *, batch: int = 5000) -> ChainReport:
    """Re-compute the chain in seq order, ``batch`` rows per query; stop at the first bad row.

    Checks sealed rows only; ``ChainReport.unsealed`` counts the rest (run
    :func:`seal_pending` first to include everything committed so far).
    """
    if batch < 1:
        raise ValueError("batch must be positive")
    prev = _Prev()
    checked = 0
    bad: tuple[int, str] | None = None
    async with pool.acquire() as conn:
        while bad is None:
            rows = await conn.fetch(_VERIFY_SQL, prev.seq, batch)
            if not rows:
                break
            for row in rows:
                checked += 1
                problem = _check_row(row, prev)
                if problem is not None:
                    log.warning("audit.chain_broken", id=row["id"], seq=row["seq"], reason=problem)
                    bad = (row["id"], problem)
                    break
                prev = _Prev(
                    id=row["id"], seq=row["seq"], hash=row["hash"], format=row["hash_format"]
                )
        unsealed: int = await conn.fetchval("SELECT count(*) FROM audit_log WHERE seq IS NULL")
    return ChainReport(
        ok=bad is None,
        rows_checked=checked,
        first_bad_id=bad[0] if bad else None,
        reason=bad[1] if bad else None,
        last_id=prev.id,
        head_hash=prev.hash.hex() if prev.hash else None,
        last_seq=prev.seq or None,
        unsealed=unsealed,
    )


def _check_row(row: asyncpg.Record, prev: _Prev) -> str | None:
    """Why ``row`` breaks the chain after ``prev``, or None when it verifies."""
    seq: int = row["seq"]
    if seq != prev.seq + 1:
        if prev.id is None:
            return f"the chain starts at seq {seq}, not 1: the first row(s) of the log were deleted"
        return (
            f"seq jumps from {prev.seq} (id {prev.id}) to {seq}: "
            f"{seq - prev.seq - 1} sealed row(s) between them were deleted"
        )
    if row["prev_hash"] != prev.hash:
        if prev.id is None:
            return (
                "prev_hash is set but no earlier row exists: "
                "the first row(s) of the log were deleted"
            )
        return (
            f"prev_hash does not match the hash of the preceding row (id {prev.id}): "
            "a row between them was deleted, or the preceding row was rewritten"
        )
    fmt: int = row["hash_format"]
    if fmt == 1 and prev.format == HASH_FORMAT:
        return "a row in the pre-0005 hash format follows rows sealed in the current format"
    expected = chain_hash(prev.hash, _row_canonical(row, seq if fmt == HASH_FORMAT else None))
    if row["hash"] != expected:
        return "hash does not match the row's contents: the row was altered after it was written"
    return None
