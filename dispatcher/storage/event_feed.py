"""One read of the event tables for every open event stream (issue 13, item 6).

Without it, each open stream ran its own query on every wake-up: N dashboards cost N
queries per committed event. :class:`EventFeed` reads the stream once, unfiltered, from
its own position (its *head*), keeps the last :data:`DEFAULT_KEEP` events in memory, and
serves every stream whose position lies inside that window by filtering in memory
(facility, kinds). A stream that resumes from further back (``Last-Event-ID``/``after``)
reads the tables itself until it reaches the window, then joins the feed.

No task of its own: the first stream that needs newer events than the feed holds reads
them (under a lock, single flight); streams that come for the same wake-up find the feed
fresh and take their events from memory. The feed counts as fresh while no notification
arrived since its last read started (:attr:`EventHub.wakeups`) and that read is younger
than ``fresh_s`` (the poll fallback of the streams; shorter while rows are held back
behind an older transaction, and not at all when the last read hit its limit). So N
streams cost about one query per wake-up and at most one per ``fresh_s`` while idle.

Correctness is the reader's (:class:`~dispatcher.storage.event_stream.EventReader`): the
feed only reads settled rows, in stream order, from its head, so the window holds every
event between its floor and its head; a stream positioned in the window gets each event
after its position once. A read failure goes to the stream that made it (it backs off);
the feed keeps its head.
"""

from __future__ import annotations

import asyncio
import bisect
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Final

from prometheus_client import Counter

from dispatcher.storage.event_stream import (
    ALL_KINDS,
    Batch,
    EventKind,
    EventReader,
    Position,
    StreamEvent,
)

FEED_READS = Counter(
    "fleetd_event_feed_reads_total",
    "Reads of the event tables by the shared event feed (one for all open streams).",
)

#: Events the feed keeps in memory: a stream further behind reads the tables itself.
DEFAULT_KEEP: Final = 4096
#: Rows per read of the feed.
FEED_BATCH: Final = 500


@dataclass(frozen=True, slots=True)
class Slice:
    """What a stream gets from the feed: its events, and how far the feed looked."""

    batch: Batch
    #: The stream's new position: the last event examined (sent or filtered out).
    through: Position


class EventFeed:
    """The shared window of recent events (see the module docstring)."""

    def __init__(
        self,
        reader: EventReader,
        wakeups: Callable[[], int],
        *,
        keep: int = DEFAULT_KEEP,
        fresh_s: float = 1.0,
        held_fresh_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._wakeups = wakeups
        self._keep = keep
        self._fresh_s = fresh_s
        self._held_fresh_s = held_fresh_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._events: list[StreamEvent] = []
        self._positions: list[Position] = []
        #: Every event after the floor and up to the head is in the window.
        self._floor: Position | None = None
        self._head: Position | None = None
        self._read_at = -float("inf")
        self._read_wakeups = -1
        self._held = False
        self._more = False
        #: Reads made (for tests and the benchmark; the metric counts them too).
        self.reads = 0

    @property
    def started(self) -> bool:
        return self._head is not None

    async def start(self) -> None:
        """Begin the window at "now" (idempotent); a stream's live start is at or after."""
        async with self._lock:
            if self._head is None:
                now = await self._reader.live_position()
                self._floor = self._head = now

    def covers(self, position: Position) -> bool:
        """Whether the feed can serve a stream at ``position`` (else it reads itself)."""
        return self._floor is not None and position >= self._floor

    async def after(
        self,
        position: Position,
        *,
        facility_id: uuid.UUID | None = None,
        kinds: Collection[EventKind] = ALL_KINDS,
        limit: int = 200,
    ) -> Slice | None:
        """Events after ``position`` for one stream; None when it is behind the window."""
        if not self.covers(position):
            return None
        if self._stale():
            await self._refresh()
            if not self.covers(position):
                return None
        assert self._head is not None
        start = bisect.bisect_right(self._positions, position)
        wanted = frozenset(kinds)
        out: list[StreamEvent] = []
        through = max(position, self._head)
        for i in range(start, len(self._events)):
            ev = self._events[i]
            if ev.kind in wanted and (facility_id is None or ev.facility_id == facility_id):
                if len(out) == limit:
                    through = self._positions[i - 1]
                    return Slice(Batch(out, more=True, held=self._held), through)
                out.append(ev)
        return Slice(Batch(out, more=self._more, held=self._held), through)

    def _stale(self) -> bool:
        if self._more or self._wakeups() != self._read_wakeups:
            return True
        fresh = self._held_fresh_s if self._held else self._fresh_s
        return self._clock() - self._read_at >= fresh

    async def _refresh(self) -> None:
        """One read for every stream: the first caller reads, the others wait and reuse."""
        async with self._lock:
            if not self._stale():
                return  # another stream read while this one waited
            assert self._head is not None
            wakeups, read_at = self._wakeups(), self._clock()
            batch = await self._reader.read(self._head, limit=FEED_BATCH)
            self.reads += 1
            FEED_READS.inc()
            self._read_wakeups, self._read_at = wakeups, read_at
            self._held, self._more = batch.held, batch.more
            if batch.events:
                self._events.extend(batch.events)
                self._positions.extend(ev.position for ev in batch.events)
                self._head = batch.events[-1].position
                self._trim()

    def _trim(self) -> None:
        extra = len(self._events) - self._keep
        if extra > 0:
            self._floor = self._positions[extra - 1]
            del self._events[:extra]
            del self._positions[:extra]
