"""The registry's change feed: what happened to vehicles, in order, for whoever records it.

The Postgres writer drains it into ``vehicle_events`` (and puts a failed batch back);
listeners (the metrics at the edge) see each change as it happens. Bounded: while the
writer cannot keep up, the oldest changes are dropped and counted, never blocking the
links. No I/O here.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from fleet.model import ChangeKind

log = structlog.get_logger(__name__)

#: Changes kept for the writer while Postgres is away; beyond this the oldest are dropped.
MAX_PENDING_CHANGES = 100_000


@dataclass(frozen=True, slots=True)
class FleetChange:
    """Something worth recording about a vehicle (a ``vehicle_events`` row)."""

    vehicle_id: uuid.UUID
    facility_id: uuid.UUID
    kind: ChangeKind
    details: dict[str, Any]
    at: float


ChangeListener = Callable[[FleetChange], None]


class ChangeFeed:
    """A bounded queue of :class:`FleetChange`, with synchronous listeners."""

    def __init__(self, max_pending: int = MAX_PENDING_CHANGES) -> None:
        self._max = max_pending
        self._changes: deque[FleetChange] = deque()
        self._listeners: list[ChangeListener] = []
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._changes)

    def subscribe(self, listener: ChangeListener) -> None:
        """Call ``listener`` with every change from now on (on the event loop; keep it cheap)."""
        self._listeners.append(listener)

    def append(self, change: FleetChange, *, record: bool = True) -> None:
        """Queue a change for the writer (unless not ``record``) and tell the listeners."""
        if record:
            self._changes.append(change)
            self._trim()
        for listener in self._listeners:
            listener(change)

    def drain(self, limit: int = 10_000) -> list[FleetChange]:
        """Take up to ``limit`` changes, oldest first."""
        out: list[FleetChange] = []
        while self._changes and len(out) < limit:
            out.append(self._changes.popleft())
        return out

    def requeue(self, changes: list[FleetChange]) -> None:
        """Put back changes a failed write took, ahead of newer ones (listeners not told again)."""
        self._changes.extendleft(reversed(changes))
        self._trim()

    def _trim(self) -> None:
        while len(self._changes) > self._max:
            self._changes.popleft()
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("vehicle_events.dropped", dropped_total=self.dropped)
