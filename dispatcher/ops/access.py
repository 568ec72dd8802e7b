"""Refused requests (401/403) and the event stream's facility scope, audited.

Authentication itself (reading the bearer token, looking it up) is the API's; what a
refusal records, and that it is recorded, is decided here.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import asyncpg
import structlog

from dispatcher.audit.log import AuditEntry
from dispatcher.auth.roles import Permission
from dispatcher.ops import audit
from dispatcher.ops.caller import Caller
from dispatcher.storage.zones_store import ZoneStore

log = structlog.get_logger(__name__)


#: Longest request path stored in an audit row (and logged): the raw path may be 20 kB.
MAX_PATH = 256


def truncated(path: str, limit: int = MAX_PATH) -> str:
    """``path`` cut to ``limit`` characters (marked with a trailing ``...``)."""
    return path if len(path) <= limit else path[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class Denial:
    """A request refused before it reached an operation.

    ``reason`` is a :class:`~dispatcher.auth.tokens.DenyReason` value or ``forbidden``;
    ``token_id`` names the presented token when it is known but not usable (expired,
    revoked); ``caller`` is set when the token was fine but lacks the permission.
    """

    reason: str
    route: str
    method: str
    path: str
    required: Collection[Permission]
    source: str | None
    token_id: uuid.UUID | None = None
    caller: Caller | None = None


def denial_entry(denial: Denial) -> AuditEntry:
    """The ``auth.denied`` row of ``denial``."""
    caller = denial.caller
    return AuditEntry(
        action="auth.denied",
        resource_type="route",
        resource_id=denial.route,
        success=False,
        reason=denial.reason,
        facility_id=caller.facility_id if caller else None,
        actor_token_id=caller.token_id if caller else denial.token_id,
        actor_role=caller.role if caller else None,
        source=denial.source,
        details={
            "method": denial.method,
            "path": truncated(denial.path),
            "required": sorted(denial.required),
        },
    )


class StreamRefusal(StrEnum):
    UNKNOWN_FACILITY = "unknown_facility"
    OTHER_FACILITY = "other_facility"


@dataclass(frozen=True, slots=True)
class StreamRefused:
    reason: StreamRefusal
    facility_ref: str


class DenialRecorder(Protocol):
    """Where refusals go (:class:`dispatcher.ops.denials.DenialLog`: tallied, bounded)."""

    async def record(self, denial: Denial) -> None: ...


class AccessOps:
    """Records refusals of access."""

    def __init__(self, pool: asyncpg.Pool, denials: DenialRecorder | None = None) -> None:
        self._pool = pool
        self._denials = denials

    async def denied(self, denial: Denial) -> None:
        """Audit a 401/403 through the denial log (one row per refusal without one);
        a failure to write is logged, the refusal stands regardless."""
        log.info(
            "auth.denied",
            reason=denial.reason,
            route=denial.route,
            token_id=str(denial.token_id) if denial.token_id else None,
            source=denial.source,
        )
        if self._denials is not None:
            await self._denials.record(denial)
            return
        row = denial_entry(denial)
        try:
            await audit.record(self._pool, row)
        except Exception:  # the refusal stands even when it cannot be recorded
            log.exception("audit.write_failed", action=row.action, reason=denial.reason)

    async def event_scope(
        self, caller: Caller, facility_ref: str | None
    ) -> uuid.UUID | StreamRefused | None:
        """The facility whose events ``caller`` may stream (None: every one it sees).

        Naming another facility than the caller's is refused and audited.
        """
        if facility_ref is None or facility_ref == "":
            return caller.facility_id
        fac = await ZoneStore(self._pool).facility(facility_ref)
        if fac is None and caller.facility_id is None:
            return StreamRefused(StreamRefusal.UNKNOWN_FACILITY, facility_ref)
        # A scoped caller gets the same answer for an unknown facility as for a foreign
        # one: facility existence is not probeable (issue 13, item 18).
        if fac is None or not caller.sees_facility(fac.id):
            if caller.audited:
                row = audit.entry(
                    caller,
                    action="events.stream",
                    resource_type="facility",
                    resource_id=str(fac.id) if fac is not None else facility_ref,
                    success=False,
                    reason=StreamRefusal.OTHER_FACILITY.value,
                )
                await audit.record(self._pool, row)
            return StreamRefused(StreamRefusal.OTHER_FACILITY, facility_ref)
        return fac.id
