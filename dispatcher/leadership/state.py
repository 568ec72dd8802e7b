"""Leadership decisions, pure: no I/O, no asyncio, no clock of its own (callers pass it).

One :class:`FacilityLease` per configured facility says whether this daemon is its
``active`` dispatcher or a ``standby``, with the fencing token of the tenure it holds,
and until when it may act on it without a renewal. The lease row in PostgreSQL expires
``ttl_s`` after the database committed the last renewal; the daemon counts its own
deadline from the moment it *sent* that renewal (earlier), minus a safety margin, so it
stops dispatching before the database could consider the lease free, whatever the two
clocks say.
"""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """What this daemon is for a facility."""

    ACTIVE = "active"
    STANDBY = "standby"


@dataclass(frozen=True, slots=True)
class Fence:
    """What a fenced write carries: who claims to lead the facility, in which tenure."""

    facility_id: uuid.UUID
    holder: str
    token: int


class FencedOut(Exception):
    """A write refused because its fence is stale: another daemon leads the facility now
    (or this one's lease expired). Nothing was written."""

    def __init__(self, fence: Fence) -> None:
        self.fence = fence
        super().__init__(
            f"stale fencing token {fence.token} for facility {fence.facility_id} "
            f"(holder {fence.holder}): the write was refused"
        )


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """How long a lease lasts, how often it is renewed, how often a standby polls.

    ``takeover_s`` is the promise: a standby is active at most that long after the active
    daemon died. The lease lasts ``ttl_s`` = ``takeover_s`` minus one standby poll and a
    margin for the takeover's own work; the holder renews every ``renew_s`` (a third of
    the lease: two renewals may fail before it steps down).
    """

    takeover_s: float
    ttl_s: float
    renew_s: float
    poll_s: float
    #: Stop acting this long before the lease could expire (network and scheduling delay).
    margin_s: float

    @classmethod
    def of(
        cls,
        takeover_s: float,
        *,
        renew_s: float | None = None,
        poll_s: float | None = None,
    ) -> LeaseTiming:
        """The timing for ``takeover_s``; ``renew_s``/``poll_s`` override the derived ones."""
        poll = poll_s if poll_s is not None else max(0.05, min(1.0, takeover_s / 10))
        ttl = max(0.3, takeover_s - poll - min(1.0, takeover_s / 10))
        renew = renew_s if renew_s is not None else ttl / 3
        margin = min(renew / 2, max(0.05, ttl / 10))
        return cls(takeover_s=takeover_s, ttl_s=ttl, renew_s=renew, poll_s=poll, margin_s=margin)


@dataclass(slots=True)
class FacilityLease:
    """This daemon's view of one facility's lease (times: the daemon's monotonic clock)."""

    facility_id: uuid.UUID
    key: str
    role: Role = Role.STANDBY
    token: int | None = None
    #: Acting as leader is safe until then (monotonic seconds); meaningful when active.
    valid_until: float = 0.0

    def acquired(self, token: int, sent_at: float, timing: LeaseTiming) -> None:
        """The database granted tenure ``token`` to a request sent at ``sent_at``."""
        self.role = Role.ACTIVE
        self.token = token
        self.valid_until = sent_at + timing.ttl_s - timing.margin_s

    def renewed(self, sent_at: float, timing: LeaseTiming) -> None:
        """A renewal sent at ``sent_at`` was granted."""
        self.valid_until = max(self.valid_until, sent_at + timing.ttl_s - timing.margin_s)

    def lost(self) -> None:
        """Standby from now on (the tenure ended, was refused, or might have expired)."""
        self.role = Role.STANDBY
        self.token = None
        self.valid_until = 0.0

    def active(self, now: float) -> bool:
        """Whether this daemon may dispatch the facility at ``now``."""
        return self.role is Role.ACTIVE and now < self.valid_until

    def must_step_down(self, now: float) -> bool:
        """Active on record, but the lease could be expiring: no renewal got through."""
        return self.role is Role.ACTIVE and now >= self.valid_until

    def holds(self, now: float) -> bool:
        """Whether a tenure is held at ``now``: :meth:`fence` would give one."""
        return self.token is not None and self.active(now)

    def fence(self, holder: str, now: float) -> Fence | None:
        """The fence of the current tenure, None when not (safely) active."""
        if not self.holds(now) or self.token is None:
            return None
        return Fence(self.facility_id, holder, self.token)


def default_holder(pid: int, nonce: str | None = None) -> str:
    """``hostname:pid:random``: unique per process, and naming where the process runs so a
    daemon restarted on the same machine can tell its dead predecessor's lease."""
    return f"{socket.gethostname()}:{pid}:{nonce or uuid.uuid4().hex[:8]}"


def local_pid(holder: str, hostname: str) -> int | None:
    """The pid of a ``hostname:pid:random`` holder of this machine; None for another
    machine's holder or a holder id of another form."""
    parts = holder.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != hostname or not parts[1].isdigit():
        return None
    return int(parts[1])
