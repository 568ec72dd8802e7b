"""The shared event feed against real PostgreSQL (issue 13, item 6): N streams, one read.

The feed's reader is the real :class:`EventReader` on a test database, wrapped to count
its reads; the clock is fixed, so "fresh" never depends on how fast the machine is.

The stream's horizon is server-wide: a transaction of another test run, anywhere on the
shared server, holds committed events back until it ends. So each test first waits (with
a reader of its own) until its events have settled, then counts the feed's reads.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection

import asyncpg
import pytest

from dispatcher.config import FacilitySettings
from dispatcher.storage.event_feed import EventFeed
from dispatcher.storage.event_stream import (
    ALL_KINDS,
    Batch,
    EventKind,
    EventReader,
    Position,
)
from dispatcher.storage.fleet_store import sync_facilities
from tests.conftest import eventually

NORTH = FacilitySettings(key="feed-north", name="North")
SOUTH = FacilitySettings(key="feed-south", name="South")


class CountingReader(EventReader):
    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self.reads = 0

    async def read(
        self,
        after: Position,
        *,
        facility_id: uuid.UUID | None = None,
        kinds: Collection[EventKind] = ALL_KINDS,
        limit: int = 200,
    ) -> Batch:
        self.reads += 1
        await asyncio.sleep(0)  # let the other streams pile up behind the lock
        return await super().read(after, facility_id=facility_id, kinds=kinds, limit=limit)


class Wakeups:
    """What the hub's wake-up counter does, by hand."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        return self.count


async def vehicle(pool: asyncpg.Pool, facility: FacilitySettings) -> uuid.UUID:
    vid = uuid.uuid4()
    await pool.execute(
        "INSERT INTO vehicles (id, facility_id, kind, manufacturer, serial) "
        "VALUES ($1, $2, 'robot', 'acme', $3)",
        vid,
        facility.id,
        vid.hex[:10],
    )
    return vid


async def event(pool: asyncpg.Pool, vid: uuid.UUID, facility: FacilitySettings) -> int:
    seq: int = await pool.fetchval(
        "INSERT INTO vehicle_events (vehicle_id, facility_id, event) "
        "VALUES ($1, $2, 'went_online') RETURNING seq",
        vid,
        facility.id,
    )
    return seq


async def settled(pool: asyncpg.Pool, after: Position, seqs: list[int]) -> None:
    """Wait until the events ``seqs`` can be sent (no older transaction holds them)."""
    reader = EventReader(pool)

    async def visible() -> bool:
        batch = await reader.read(after, limit=1000)
        return set(seqs) <= {e.seq for e in batch.events}

    await eventually(visible, timeout=60)


@pytest.fixture
async def setup(pg_pool: asyncpg.Pool) -> tuple[asyncpg.Pool, uuid.UUID, uuid.UUID]:
    await sync_facilities(pg_pool, [NORTH, SOUTH])
    return pg_pool, await vehicle(pg_pool, NORTH), await vehicle(pg_pool, SOUTH)


async def test_many_streams_one_read_each_filtered(
    setup: tuple[asyncpg.Pool, uuid.UUID, uuid.UUID],
) -> None:
    pool, north_v, south_v = setup
    reader, wakeups = CountingReader(pool), Wakeups()
    feed = EventFeed(reader, wakeups, clock=lambda: 0.0)
    await feed.start()
    live = await reader.live_position()
    assert feed.covers(live)

    seqs = [await event(pool, north_v, NORTH), await event(pool, south_v, SOUTH)]
    await settled(pool, live, seqs)
    wakeups.count += 1  # the NOTIFY of those commits
    facilities = [None, NORTH.id, SOUTH.id] * 4  # 12 streams
    slices = await asyncio.gather(*(feed.after(live, facility_id=f) for f in facilities))
    assert reader.reads == 1, "12 streams woken by one notification cost one query"
    for f, got in zip(facilities, slices, strict=True):
        assert got is not None
        ids = [e.seq for e in got.batch.events]
        expected = {None: seqs, NORTH.id: seqs[:1], SOUTH.id: seqs[1:]}[f]
        assert ids == expected
        assert not got.batch.more
    # Every stream moved to the feed's head, the filtered-out events included.
    heads = {s.through for s in slices if s is not None}
    assert len(heads) == 1

    # No new notification and a fresh read: asking again costs nothing and gives nothing.
    head = heads.pop()
    again = await feed.after(head)
    assert again is not None and again.batch.events == [] and reader.reads == 1


async def test_poll_reads_again_once_stale(
    setup: tuple[asyncpg.Pool, uuid.UUID, uuid.UUID],
) -> None:
    pool, north_v, _ = setup
    now = [0.0]
    reader, wakeups = CountingReader(pool), Wakeups()
    feed = EventFeed(reader, wakeups, fresh_s=1.0, clock=lambda: now[0])
    await feed.start()
    live = await reader.live_position()
    assert (await feed.after(live)) is not None and reader.reads == 1
    seq = await event(pool, north_v, NORTH)  # a lost notification
    await settled(pool, live, [seq])
    got = await feed.after(live)
    assert got is not None and got.batch.events == [] and reader.reads == 1
    now[0] = 1.0  # the poll interval passed
    got = await feed.after(live)
    assert got is not None and [e.seq for e in got.batch.events] == [seq]
    assert reader.reads == 2


async def test_limit_and_window(setup: tuple[asyncpg.Pool, uuid.UUID, uuid.UUID]) -> None:
    pool, north_v, _ = setup
    reader, wakeups = CountingReader(pool), Wakeups()
    feed = EventFeed(reader, wakeups, keep=4, clock=lambda: 0.0)
    await feed.start()
    live = await reader.live_position()
    seqs = [await event(pool, north_v, NORTH) for _ in range(3)]
    await settled(pool, live, seqs)
    wakeups.count += 1
    first = await feed.after(live, limit=2)
    assert first is not None and [e.seq for e in first.batch.events] == seqs[:2]
    assert first.batch.more
    rest = await feed.after(first.through, limit=2)
    assert rest is not None and [e.seq for e in rest.batch.events] == seqs[2:]
    assert reader.reads == 1

    # Three more push the oldest two out of a window of four: a stream still at the
    # start is behind it and must read the tables itself (the feed says None).
    more = [await event(pool, north_v, NORTH) for _ in range(3)]
    await settled(pool, live, more)
    wakeups.count += 1
    tail = await feed.after(rest.through)
    assert tail is not None and [e.seq for e in tail.batch.events] == more
    assert not feed.covers(live)
    assert await feed.after(live) is None
    # What the stream reads itself meets the window: it can join the feed after that.
    own = await reader.read(live, limit=3)
    assert feed.covers(own.events[-1].position)
