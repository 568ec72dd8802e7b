"""What a standby keeps of the facilities it does not lead, for the gap of a takeover (pure).

Only the daemon holding a facility's lease writes its vehicles' state, positions and
vehicle events: two daemons writing the same rows doubled every vehicle event and
deadlocked each other's batches (soak, 2026-12-03). The standby hears the same vehicles,
though, and the leader it replaces may have died with its last second or more of changes
unwritten. So the standby keeps each facility's newest changes for a while
(:class:`TakeoverGap`); when it takes the facility over, it writes those the old leader
did not store (:func:`not_stored`: the two daemons heard the same messages, each at its
own receive time, so a change matches a stored one by what it is and a time close by).
"""

from __future__ import annotations

import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

#: How far apart two daemons' receive times of one message may be (seconds).
SAME_CHANGE_WITHIN_S = 2.0


@dataclass(slots=True)
class TakeoverGap(Generic[T]):
    """Per facility, the items (each with its time, epoch seconds) of the last ``keep_s``
    seconds, at most ``max_items`` of them; the oldest go first."""

    keep_s: float
    max_items: int = 50_000
    _kept: dict[uuid.UUID, deque[tuple[float, T]]] = field(default_factory=dict)

    def keep(self, facility_id: uuid.UUID, at: float, item: T) -> None:
        """Keep ``item`` of ``facility_id``, dropping what is older than ``keep_s`` before it."""
        kept = self._kept.setdefault(facility_id, deque())
        kept.append((at, item))
        horizon = at - self.keep_s
        while kept and (kept[0][0] < horizon or len(kept) > self.max_items):
            kept.popleft()

    def take(self, facility_id: uuid.UUID) -> list[tuple[float, T]]:
        """Everything kept for ``facility_id`` with its time, in the order kept; the
        facility's store is emptied."""
        return list(self._kept.pop(facility_id, ()))

    def forget(self, facility_ids: Iterable[uuid.UUID]) -> None:
        """Drop what is kept for these facilities (this daemon writes them itself now)."""
        for fid in facility_ids:
            self._kept.pop(fid, None)

    def __len__(self) -> int:
        return sum(len(k) for k in self._kept.values())


def not_stored(
    kept: Sequence[tuple[float, T]],
    stored: Iterable[tuple[Hashable, float]],
    key: Callable[[T], Hashable],
    *,
    within_s: float = SAME_CHANGE_WITHIN_S,
) -> list[T]:
    """The kept items with no stored counterpart: one with the same ``key`` and a time
    within ``within_s``. Each stored row answers for one kept item at most."""
    times: dict[Hashable, list[float]] = defaultdict(list)
    for k, at in stored:
        times[k].append(at)
    out: list[T] = []
    for at, item in kept:
        candidates = times.get(key(item), [])
        match = min(candidates, key=lambda s: abs(s - at), default=None)
        if match is not None and abs(match - at) <= within_s:
            candidates.remove(match)
        else:
            out.append(item)
    return out
