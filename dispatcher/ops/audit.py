"""Audit rows of operations: the one place fleetd builds and writes them.

A change and its audit row commit together (:func:`append` on the change's connection);
a refusal changes nothing and is written in a transaction of its own (:func:`record`).
An action that already happened outside Postgres (a command sent to a vehicle) must not
be reported as failed because its audit row could not be written: :func:`record_quietly`
logs that failure instead of raising it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import asyncpg
import structlog

from dispatcher.audit.log import AuditEntry, append_audit, write_audit
from dispatcher.ops.caller import Caller
from dispatcher.storage.db import CONNECT_ERRORS, Conn

log = structlog.get_logger(__name__)

#: What a failed audit write raises (the database refused it or is unreachable).
STORAGE_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *CONNECT_ERRORS)


def entry(
    caller: Caller,
    *,
    action: str,
    resource_type: str,
    resource_id: str | None,
    success: bool,
    facility_id: uuid.UUID | None = None,
    details: Mapping[str, Any] | None = None,
    reason: str | None = None,
) -> AuditEntry:
    """The audit row of ``caller``'s action.

    ``facility_id`` is the affected resource's facility; it defaults to the caller's own
    (None for a caller of every facility).
    """
    return AuditEntry(
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        success=success,
        details=dict(details or {}),
        reason=reason,
        facility_id=facility_id if facility_id is not None else caller.facility_id,
        actor_token_id=caller.token_id,
        actor_role=caller.role,
        source=caller.source,
    )


async def append(conn: Conn, row: AuditEntry) -> None:
    """Add ``row`` to ``conn``'s transaction (it commits or rolls back with the change)."""
    await append_audit(conn, row)


async def record(pool: asyncpg.Pool, row: AuditEntry) -> None:
    """Write ``row`` in a transaction of its own (refusals, actions with no DB change)."""
    await write_audit(pool, row)


async def record_quietly(pool: asyncpg.Pool, row: AuditEntry, **log_fields: Any) -> None:
    """:func:`record`, logging (not raising) a storage failure: the action stands."""
    try:
        await write_audit(pool, row)
    except STORAGE_ERRORS:
        log.exception("audit.write_failed", action=row.action, **log_fields)


@contextlib.asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[Conn]:
    """A connection in a transaction: the change and its :func:`append` ed row."""
    async with pool.acquire() as conn, conn.transaction():
        yield conn
