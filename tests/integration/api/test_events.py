"""The live event stream (``GET /v1/events``, Server-Sent Events) against real PostgreSQL.

The app is served by a real uvicorn on a local port (streaming needs a real socket: the
in-process ASGI transport buffers whole responses). Mission events come from the missions
API, vehicle events from the fleet store's batch insert, the out-of-order cases from two
hand-driven transactions. Every test opens the stream where it needs it (from now on, or
after a known id), so the tests do not depend on each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI
from prometheus_client import REGISTRY

from dispatcher.api.routes import events as events_route
from dispatcher.api.routes.events import close_event_streams
from dispatcher.auth.roles import Role
from dispatcher.auth.tokens import create_token, revoke_token
from dispatcher.config import FacilitySettings, Settings
from dispatcher.storage.event_stream import Batch, EventHub, EventReader, Position
from dispatcher.storage.fleet_store import VehicleEventRow, insert_vehicle_events
from dispatcher.storage.migrate import apply_migrations
from tests.conftest import (
    REDIS_URL,
    api_client,
    daemon_settings,
    db_pool,
    eventually,
    free_port,
    running_daemon,
    scratch_database,
)
from tests.unit.api.fakes import StaticFleet
from tests.unit.api.harness import NORTH, SOUTH, add_facilities, app_for, make_services, new_token

pytestmark = pytest.mark.asyncio(loop_scope="module")

WAIT_S = 15.0  # generous: the horizon is server-wide and other test runs share the server


# Infrastructure --------------------------------------------------------------------------

STREAM_READS_METRIC = "fleetd_event_stream_reads_total"
#: Live streams share the feed's reads (issue 13, item 6); resuming ones read themselves.
FEED_READS_METRIC = "fleetd_event_feed_reads_total"
STREAM_SENT_METRIC = "fleetd_event_stream_events_sent_total"


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def _reads() -> float:
    """Reads of the event tables for streams: the shared feed's and streams' own."""
    return _sample(STREAM_READS_METRIC) + _sample(FEED_READS_METRIC)


class _Server(uvicorn.Server):
    """uvicorn without signal handlers (pytest owns the process)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Served:
    app: FastAPI
    server: uvicorn.Server
    task: asyncio.Task[None]
    base_url: str

    async def stop(self) -> None:
        await close_event_streams(self.app)
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 10)


async def serve(app: FastAPI) -> Served:
    port = free_port()
    server = _Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            lifespan="off",
            log_config=None,
            access_log=False,
        )
    )
    task = asyncio.create_task(server.serve(), name="test.uvicorn")
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        await asyncio.sleep(0.02)
    return Served(app, server, task, f"http://127.0.0.1:{port}")


@dataclass
class Event:
    id: int
    name: str
    data: dict[str, Any]


@dataclass
class SseReader:
    """Reads an SSE response block by block (events; comments are collected)."""

    response: httpx.Response
    comments: list[str] = field(default_factory=list)
    _lines: AsyncIterator[str] | None = None

    async def next_block(self) -> list[str]:
        """The lines of the next message (StopAsyncIteration when the stream ended)."""
        if self._lines is None:
            self._lines = self.response.aiter_lines()
        block: list[str] = []
        while True:
            line = await anext(self._lines)
            if line == "":
                if block:
                    return block
                continue
            block.append(line)

    async def next_event(self, timeout: float = WAIT_S) -> Event:
        async with asyncio.timeout(timeout):
            while True:
                fields: dict[str, str] = {}
                for line in await self.next_block():
                    if line.startswith(":"):
                        self.comments.append(line[1:].strip())
                        continue
                    key, _, value = line.partition(":")
                    fields[key] = value.removeprefix(" ")
                if "data" in fields:
                    return Event(int(fields["id"]), fields["event"], json.loads(fields["data"]))

    async def events(self, n: int, timeout: float = WAIT_S) -> list[Event]:
        return [await self.next_event(timeout) for _ in range(n)]


@contextlib.asynccontextmanager
async def open_stream(
    base_url: str,
    secret: str,
    *,
    last_event_id: int | None = None,
    **params: Any,
) -> AsyncIterator[SseReader]:
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    async with (
        api_client(base_url, secret, timeout=WAIT_S) as client,
        client.stream("GET", "/v1/events", headers=headers, params=params) as response,
    ):
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = SseReader(response)
        # The first block (retry + ": connected") proves the stream is open and subscribed.
        await asyncio.wait_for(reader.next_block(), WAIT_S)
        yield reader


# Module fixtures -------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def db_dsn() -> AsyncIterator[str]:
    async with scratch_database("events", prepare=apply_migrations) as dsn:
        yield dsn


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    async with db_pool(db_dsn, max_size=6) as p:
        await add_facilities(p)
        yield p


def make_app(db_dsn: str, pool: asyncpg.Pool, redis: aioredis.Redis, **api: Any) -> FastAPI:
    settings = Settings(
        database={"dsn": db_dsn},
        redis={"url": REDIS_URL, "key_prefix": f"test:{uuid.uuid4().hex[:12]}:"},
        facilities=[NORTH, SOUTH],
        api=api,
    )
    return app_for(make_services(settings, pool, redis, StaticFleet()))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(db_dsn: str, pool: asyncpg.Pool, redis: aioredis.Redis) -> AsyncIterator[Served]:
    s = await serve(make_app(db_dsn, pool, redis))
    try:
        yield s
    finally:
        await s.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def operator(pool: asyncpg.Pool) -> str:
    return await new_token(pool, Role.OPERATOR, NORTH)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def vehicles(pool: asyncpg.Pool) -> dict[str, uuid.UUID]:
    """One vehicle row per facility (vehicle events reference vehicles)."""
    ids = {}
    for fac in (NORTH, SOUTH):
        vid = uuid.uuid4()
        await pool.execute(
            "INSERT INTO vehicles (id, facility_id, kind, manufacturer, serial) "
            "VALUES ($1, $2, 'robot', 'acme', $3)",
            vid,
            fac.id,
            f"{fac.key}-{vid.hex[:6]}",
        )
        ids[fac.key] = vid
    return ids


# Event producers -------------------------------------------------------------------------

MISSION = {"pickup": {"lat": 52.5218, "lon": 13.4061}, "dropoff": {"lat": 52.5209, "lon": 13.4095}}


async def create_mission(served: Served, secret: str) -> dict[str, Any]:
    async with api_client(served.base_url, secret) as client:
        r = await client.post("/v1/missions", json=MISSION)
    assert r.status_code == 201, r.text
    mission: dict[str, Any] = r.json()
    return mission


async def cancel_mission(served: Served, secret: str, mission_id: str) -> None:
    async with api_client(served.base_url, secret) as client:
        r = await client.post(f"/v1/missions/{mission_id}/cancel")
    assert r.status_code == 200, r.text


async def vehicle_event(
    pool: asyncpg.Pool, vehicle_id: uuid.UUID, facility: FacilitySettings, event: str
) -> int:
    await insert_vehicle_events(pool, [VehicleEventRow(vehicle_id, facility.id, event)])
    seq: int = await pool.fetchval(
        "SELECT max(seq) FROM vehicle_events WHERE vehicle_id = $1", vehicle_id
    )
    return seq


async def mission_seq(pool: asyncpg.Pool, mission_id: str, event: str) -> int:
    seq: int = await pool.fetchval(
        "SELECT seq FROM mission_events WHERE mission_id = $1 AND event = $2",
        uuid.UUID(mission_id),
        event,
    )
    return seq


# Tests -----------------------------------------------------------------------------------


class TestStream:
    async def test_mission_and_vehicle_events_arrive(
        self, served: Served, pool: asyncpg.Pool, operator: str, vehicles: dict[str, uuid.UUID]
    ) -> None:
        async with open_stream(served.base_url, operator) as stream:
            mission = await create_mission(served, operator)
            got = await stream.next_event()
            assert got.name == "mission.created"
            assert got.id == await mission_seq(pool, mission["id"], "created")
            assert got.data["mission_id"] == mission["id"]
            assert got.data["facility_id"] == str(NORTH.id)
            assert got.data["from_status"] is None and got.data["to_status"] == "pending"
            assert got.data["seq"] == got.id and got.data["type"] == "mission"
            assert got.data["at"]

            seq = await vehicle_event(pool, vehicles["north"], NORTH, "went_online")
            got = await stream.next_event()
            assert (got.id, got.name) == (seq, "vehicle.went_online")
            assert got.data["vehicle_id"] == str(vehicles["north"])
            assert got.data["facility_id"] == str(NORTH.id)

            await insert_vehicle_events(
                pool,
                [
                    VehicleEventRow(
                        vehicles["north"],
                        NORTH.id,
                        "status_changed",
                        {"from": "idle", "to": "paused"},
                    )
                ],
            )
            got = await stream.next_event()
            assert got.name == "vehicle.status_changed"
            assert (got.data["from_status"], got.data["to_status"]) == ("idle", "paused")
            assert got.data["details"] == {"from": "idle", "to": "paused"}

    async def test_live_streams_share_the_feed_reads(
        self, served: Served, pool: asyncpg.Pool, operator: str, vehicles: dict[str, uuid.UUID]
    ) -> None:
        """Issue 13, item 6: live streams read through the one shared feed; none of them
        queries the event tables on its own (``fleetd_event_stream_reads_total`` counts
        only resuming streams' own reads)."""
        async with contextlib.AsyncExitStack() as stack:
            streams = [
                await stack.enter_async_context(open_stream(served.base_url, operator))
                for _ in range(3)
            ]
            own = _sample(STREAM_READS_METRIC)
            seq = await vehicle_event(pool, vehicles["north"], NORTH, "went_online")
            for stream in streams:
                assert (await stream.next_event()).id == seq
            assert _sample(STREAM_READS_METRIC) == own
            assert _sample(FEED_READS_METRIC) >= 1

    async def test_resume_after_disconnect_gets_exactly_the_missed_events(
        self, served: Served, pool: asyncpg.Pool, operator: str, vehicles: dict[str, uuid.UUID]
    ) -> None:
        """Connect, see two events, disconnect; three more happen; reconnecting with
        Last-Event-ID yields exactly those three, then live events continue. Same again
        with ?after=."""
        async with open_stream(served.base_url, operator) as stream:
            first = await create_mission(served, operator)
            await vehicle_event(pool, vehicles["north"], NORTH, "went_offline")
            seen = await stream.events(2)
        assert [e.name for e in seen] == ["mission.created", "vehicle.went_offline"]

        second = await create_mission(served, operator)
        v_seq = await vehicle_event(pool, vehicles["north"], NORTH, "went_online")
        await cancel_mission(served, operator, first["id"])
        missed = [
            await mission_seq(pool, second["id"], "created"),
            v_seq,
            await mission_seq(pool, first["id"], "cancelled"),
        ]
        async with open_stream(served.base_url, operator, last_event_id=seen[-1].id) as stream:
            got = await stream.events(3)
            assert [e.id for e in got] == missed
            assert [e.name for e in got] == [
                "mission.created",
                "vehicle.went_online",
                "mission.cancelled",
            ]
            # Nothing else was pending: the next event is a fresh one.
            marker = await vehicle_event(pool, vehicles["north"], NORTH, "registered")
            assert (await stream.next_event()).id == marker

        third = await create_mission(served, operator)
        async with open_stream(served.base_url, operator, after=str(marker)) as stream:
            got = await stream.events(1)
            assert [e.id for e in got] == [await mission_seq(pool, third["id"], "created")]
            marker = await vehicle_event(pool, vehicles["north"], NORTH, "registered")
            assert (await stream.next_event()).id == marker

    async def test_after_zero_replays_history(
        self, served: Served, pool: asyncpg.Pool, operator: str
    ) -> None:
        total = await pool.fetchval(
            "SELECT (SELECT count(*) FROM mission_events WHERE facility_id = $1) + "
            "(SELECT count(*) FROM vehicle_events WHERE facility_id = $1)",
            NORTH.id,
        )
        assert total > 0
        async with open_stream(served.base_url, operator, after="0") as stream:
            got = await stream.events(total)
        assert len({e.id for e in got}) == total
        assert all(e.data["facility_id"] == str(NORTH.id) for e in got)


class TestOutOfOrderCommits:
    async def test_lower_seq_committing_later_is_not_lost(
        self,
        served: Served,
        db_dsn: str,
        pool: asyncpg.Pool,
        operator: str,
        vehicles: dict[str, uuid.UUID],
    ) -> None:
        """T1 inserts seq a, T2 inserts seq b > a and commits first. b must wait for a (a
        `seq > cursor` reader would send b, move past a, and never send it)."""
        vid = vehicles["north"]
        insert = (
            "INSERT INTO vehicle_events (vehicle_id, facility_id, event) "
            "VALUES ($1, $2, $3) RETURNING seq"
        )
        async with open_stream(served.base_url, operator, types="vehicle") as stream:
            c1 = await asyncpg.connect(db_dsn)
            c2 = await asyncpg.connect(db_dsn)
            pending: asyncio.Task[Event] | None = None
            try:
                t1, t2 = c1.transaction(), c2.transaction()
                await t1.start()
                await t2.start()
                a = await c1.fetchval(insert, vid, NORTH.id, "went_offline")
                b = await c2.fetchval(insert, vid, NORTH.id, "went_online")
                assert a < b
                await t2.commit()
                # b is committed and visible, yet must not be sent while a is pending.
                naive = await pool.fetch(
                    "SELECT seq FROM vehicle_events WHERE seq >= $1 ORDER BY seq", a
                )
                assert [r["seq"] for r in naive] == [b]  # what a seq reader would see now
                pending = asyncio.create_task(stream.next_event())
                # Two reads that began after b committed (counted by the server), and the
                # server sent nothing meanwhile: b was held back, not merely not read yet.
                reads, sent = _reads(), _sample(STREAM_SENT_METRIC)
                await eventually(lambda: _reads() >= reads + 2, WAIT_S)
                assert _sample(STREAM_SENT_METRIC) == sent, "b was sent while a was in flight"
                assert not pending.done(), "b was sent while a lower seq was in flight"
                await t1.commit()
                got = [await pending, await stream.next_event()]
            finally:
                if pending is not None and not pending.done():
                    pending.cancel()
                await c1.close()
                await c2.close()
        assert [e.id for e in got] == [a, b]

    async def test_older_transaction_taking_a_later_seq_is_not_lost(
        self,
        served: Served,
        db_dsn: str,
        operator: str,
        vehicles: dict[str, uuid.UUID],
    ) -> None:
        """T1 starts writing first (older xid) but takes its seq after T2 and commits first;
        T2 commits afterwards. An xmin filter with a seq cursor would lose T2's row."""
        vid = vehicles["north"]
        insert = (
            "INSERT INTO vehicle_events (vehicle_id, facility_id, event) "
            "VALUES ($1, $2, $3) RETURNING seq"
        )
        async with open_stream(served.base_url, operator, types="vehicle") as stream:
            c1 = await asyncpg.connect(db_dsn)
            c2 = await asyncpg.connect(db_dsn)
            try:
                t1, t2 = c1.transaction(), c2.transaction()
                await t1.start()
                await t2.start()
                x1 = await c1.fetchval("SELECT pg_current_xact_id()")  # T1's xid first
                x2 = await c2.fetchval("SELECT pg_current_xact_id()")
                assert x1 < x2
                b = await c2.fetchval(insert, vid, NORTH.id, "went_online")
                a = await c1.fetchval(insert, vid, NORTH.id, "went_offline")
                assert b < a
                await t1.commit()
                first = await stream.next_event()  # T1's row: older than T2, safe to send
                assert first.id == a
                await t2.commit()
                second = await stream.next_event()
                assert second.id == b
            finally:
                await c1.close()
                await c2.close()
        # Resuming after T1's row still yields T2's: the order is data-defined.
        async with open_stream(
            served.base_url, operator, types="vehicle", last_event_id=a
        ) as stream:
            assert (await stream.next_event()).id == b

    async def test_reader_positions_are_stable(
        self, pool: asyncpg.Pool, vehicles: dict[str, uuid.UUID]
    ) -> None:
        """position_of(seq) gives the same cursor the live read produced."""
        reader = EventReader(pool)
        start = await reader.live_position()
        seq = await vehicle_event(pool, vehicles["south"], SOUTH, "registered")
        batches: list[Batch] = []

        async def read() -> bool:
            batches.append(await reader.read(start, facility_id=SOUTH.id))
            return bool(batches[-1].events)

        await eventually(read, timeout=WAIT_S)
        batch = batches[-1]
        assert batch.events[-1].seq == seq
        assert await reader.position_of(seq) == batch.events[-1].position
        assert await reader.position_of(10**15) is None
        assert await reader.position_of(0) == Position(0, 0)


class TestFiltersAndAccess:
    async def test_facility_and_type_filters(
        self, served: Served, pool: asyncpg.Pool, operator: str, vehicles: dict[str, uuid.UUID]
    ) -> None:
        south_op = await new_token(pool, Role.OPERATOR, SOUTH)
        admin = await new_token(pool, Role.ADMIN, None)
        async with (
            open_stream(served.base_url, south_op) as south,
            open_stream(
                served.base_url, admin, facility="north", types="vehicle"
            ) as north_vehicles,
            open_stream(served.base_url, admin) as everything,
        ):
            await create_mission(served, operator)  # north mission
            n_seq = await vehicle_event(pool, vehicles["north"], NORTH, "went_online")
            s_seq = await vehicle_event(pool, vehicles["south"], SOUTH, "went_online")
            assert (await south.next_event()).id == s_seq
            assert (await north_vehicles.next_event()).id == n_seq
            got = await everything.events(3)
            assert [e.name for e in got] == [
                "mission.created",
                "vehicle.went_online",
                "vehicle.went_online",
            ]

    @pytest.mark.parametrize(
        ("params", "headers", "status", "field"),
        [
            ({"facility": "south"}, {}, 403, None),
            # issue 13, item 18: unknown looks like foreign to a scoped token
            ({"facility": "nowhere"}, {}, 403, None),
            ({"types": "mission,telemetry"}, {}, 422, "query.types"),
            ({"after": "-1"}, {}, 422, "query.after"),
            ({}, {"Last-Event-ID": "abc"}, 422, "header.Last-Event-ID"),
            ({}, {"Last-Event-ID": "999999999999"}, 422, "header.Last-Event-ID"),
            ({"after": "999999999999"}, {}, 422, "query.after"),
        ],
    )
    async def test_bad_requests(
        self,
        served: Served,
        operator: str,
        params: dict[str, str],
        headers: dict[str, str],
        status: int,
        field: str | None,
    ) -> None:
        async with api_client(served.base_url, operator) as client:
            r = await client.get("/v1/events", params=params, headers=headers)
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == "application/problem+json"
        if field is not None:
            assert field in [e["field"] for e in r.json()["errors"]]

    @pytest.mark.parametrize("role", list(Role))
    async def test_roles(self, served: Served, pool: asyncpg.Pool, role: Role) -> None:
        secret = await new_token(pool, role, None if role is Role.ADMIN else NORTH)
        allowed = role in (Role.ADMIN, Role.OPERATOR)
        if allowed:
            async with open_stream(served.base_url, secret):
                pass
            return
        async with api_client(served.base_url, secret) as client:
            r = await client.get("/v1/events")
        assert r.status_code == 403
        rows = await pool.fetch(
            "SELECT * FROM audit_log WHERE action = 'auth.denied' AND actor_role = $1",
            role.value,
        )
        assert rows and rows[-1]["resource_id"] == "GET /v1/events"

    async def test_no_token_is_401(self, served: Served) -> None:
        async with api_client(served.base_url) as client:
            assert (await client.get("/v1/events")).status_code == 401


class TestLifecycle:
    async def test_heartbeat_while_idle(
        self, served: Served, operator: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(events_route, "HEARTBEAT_S", 0.3)
        # A filter nobody writes to in this test: the stream stays idle.
        async with open_stream(served.base_url, operator, types="mission") as stream:
            blocks = [await asyncio.wait_for(stream.next_block(), 5) for _ in range(2)]
        assert blocks == [[": keep-alive"], [": keep-alive"]]

    async def test_notify_wakes_streams_without_polling(
        self,
        served: Served,
        pool: asyncpg.Pool,
        operator: str,
        vehicles: dict[str, uuid.UUID],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(events_route, "POLL_S", 60.0)
        async with open_stream(served.base_url, operator) as stream:
            hub: EventHub = served.app.state.event_hub
            await eventually(lambda: hub.listening, timeout=WAIT_S)
            before = hub.notifications
            seq = await vehicle_event(pool, vehicles["north"], NORTH, "went_online")
            assert (await stream.next_event(timeout=10)).id == seq
            assert hub.notifications > before

    async def test_lost_listen_connection_is_survived(
        self,
        served: Served,
        pool: asyncpg.Pool,
        operator: str,
        vehicles: dict[str, uuid.UUID],
    ) -> None:
        """Kill the LISTEN backend: events still arrive (poll), and the hub re-connects."""
        async with open_stream(served.base_url, operator) as stream:
            hub: EventHub = served.app.state.event_hub
            await eventually(lambda: hub.listening, timeout=WAIT_S)
            killed = await pool.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN %'"
            )
            assert killed == 1
            seq = await vehicle_event(pool, vehicles["north"], NORTH, "went_offline")
            assert (await stream.next_event()).id == seq
            await eventually(lambda: hub.listening, timeout=WAIT_S)
            seq = await vehicle_event(pool, vehicles["north"], NORTH, "went_online")
            assert (await stream.next_event()).id == seq

    async def test_disconnect_releases_subscription_listener_and_connections(
        self, served: Served, pool: asyncpg.Pool, operator: str
    ) -> None:
        async with open_stream(served.base_url, operator), open_stream(served.base_url, operator):
            hub: EventHub = served.app.state.event_hub
            await eventually(lambda: hub.subscribers == 2 and hub.listening, timeout=WAIT_S)
        await eventually(lambda: hub.subscribers == 0 and not hub.running, timeout=WAIT_S)
        await eventually(lambda: pool.get_size() == pool.get_idle_size(), timeout=WAIT_S)

        async def no_listener() -> bool:
            n = await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN %' "
                "AND state <> 'disabled' AND backend_type = 'client backend' "
                "AND pid <> pg_backend_pid() AND state IS NOT NULL"
            )
            return bool(n == 0)

        await eventually(no_listener, timeout=WAIT_S)
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "fleetd.events.listen"]

    async def test_shutdown_ends_open_streams(
        self, db_dsn: str, pool: asyncpg.Pool, redis: aioredis.Redis, operator: str
    ) -> None:
        """close_event_streams ends every stream, so uvicorn can stop at once; new streams
        get 503; nothing is left running."""
        own = await serve(make_app(db_dsn, pool, redis))
        try:
            async with open_stream(own.base_url, operator) as stream:
                hub: EventHub = own.app.state.event_hub
                await eventually(lambda: hub.listening, timeout=WAIT_S)
                started = time.monotonic()
                await close_event_streams(own.app)
                with pytest.raises(StopAsyncIteration):
                    await asyncio.wait_for(stream.next_block(), 5)
                assert time.monotonic() - started < 3
            async with api_client(own.base_url, operator) as client:
                r = await client.get("/v1/events")
            assert r.status_code == 503 and r.headers["retry-after"]
            assert not hub.running and hub.subscribers == 0
        finally:
            own.server.should_exit = True
            await asyncio.wait_for(own.task, 5)
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "fleetd.events.listen"]


class TestTokenLifetime:
    """Issue 13, item 2: a stream does not outlive its token."""

    async def test_revoked_elsewhere_ends_the_stream(
        self, served: Served, pool: asyncpg.Pool
    ) -> None:
        """Revoked by another process (no access to this app's cache): the stream ends
        within the cache's lifetime, and the token cannot open a new one."""
        token_id, secret = await create_token(
            pool, role=Role.OPERATOR, facility_id=NORTH.id, name="revoked", expires_at=None
        )
        async with open_stream(served.base_url, secret) as stream:
            assert await revoke_token(pool, token_id)
            assert [": token no longer valid"] in await _blocks_until_end(stream)
        async with api_client(served.base_url, secret) as client:
            assert (await client.get("/v1/events")).status_code == 401

    async def test_expiry_ends_the_stream(self, served: Served, pool: asyncpg.Pool) -> None:
        _, secret = await create_token(
            pool,
            role=Role.OPERATOR,
            facility_id=NORTH.id,
            name="short-lived",
            expires_at=datetime.now(UTC) + timedelta(seconds=5),
        )
        async with open_stream(served.base_url, secret) as stream:
            assert [": token no longer valid"] in await _blocks_until_end(stream)


async def _blocks_until_end(stream: SseReader) -> list[list[str]]:
    """Every block the stream sends until the server ends it."""
    blocks = []
    while True:
        try:
            blocks.append(await asyncio.wait_for(stream.next_block(), WAIT_S))
        except StopAsyncIteration:
            return blocks


class TestLimits:
    """Issue 13, item 6: streams are capped per token and in total; replay is bounded."""

    async def test_caps_per_token_and_total(
        self, db_dsn: str, pool: asyncpg.Pool, redis: aioredis.Redis
    ) -> None:
        own = await serve(
            make_app(db_dsn, pool, redis, max_event_streams=2, max_event_streams_per_token=1)
        )
        a, b, c = [await new_token(pool, Role.OPERATOR, NORTH) for _ in range(3)]
        try:
            async with open_stream(own.base_url, a):
                async with api_client(own.base_url, a) as client:
                    r = await client.get("/v1/events")
                assert r.status_code == 429, r.text
                assert r.headers["retry-after"]
                async with open_stream(own.base_url, b):
                    async with api_client(own.base_url, c) as client:
                        r = await client.get("/v1/events")
                    assert r.status_code == 503, r.text
                    assert r.headers["retry-after"]
            # Closed streams give their slots back.
            slots = own.app.state.stream_slots
            await eventually(lambda: slots.open == 0, timeout=WAIT_S)
            async with open_stream(own.base_url, a), open_stream(own.base_url, c):
                assert slots.open == 2
        finally:
            await own.stop()

    async def test_replay_is_bounded(
        self,
        db_dsn: str,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        operator: str,
        vehicles: dict[str, uuid.UUID],
    ) -> None:
        for _ in range(4):
            recent = await vehicle_event(pool, vehicles["north"], NORTH, "went_online")
        own = await serve(make_app(db_dsn, pool, redis, event_replay_max=2))
        try:
            async with api_client(own.base_url, operator) as client:
                for params in ({"after": "0"}, {"after": str(recent - 3)}):
                    r = await client.get("/v1/events", params=params)
                    assert r.status_code == 422, r.text
                    assert [e["field"] for e in r.json()["errors"]] == ["query.after"]
            # Within the bound: served.
            async with open_stream(own.base_url, operator, after=str(recent - 1)) as stream:
                assert (await stream.next_event()).id == recent
        finally:
            await own.stop()


class TestDaemonShutdown:
    async def test_daemon_stops_cleanly_with_a_stream_open(self) -> None:
        ns = f"t{uuid.uuid4().hex[:10]}"
        async with scratch_database("evdaemon") as dsn:  # the daemon migrates it
            settings = daemon_settings(dsn, ns, f"test:{ns}:", daemon={"shutdown_grace_s": 2})
            async with running_daemon(settings) as run:
                async with db_pool(dsn, max_size=1) as p:
                    secret = await new_token(p, Role.ADMIN, None)
                async with open_stream(run.base_url, secret) as stream:
                    await run.shutdown(10)  # raises if shutdown failed
                    with pytest.raises(StopAsyncIteration):
                        await asyncio.wait_for(stream.next_block(), 5)
