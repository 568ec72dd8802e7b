"""Two whole daemons in this process against the same PostgreSQL, Redis and broker.

One is active per facility, the other standby; a crash of the active one (its task
cancelled: no shutdown, no release) makes the standby active once the lease expired; a
stop (what SIGTERM does) hands over at once; daemons with different ``prefer`` lists
split the facilities. The fault suite (tests/integration/faults/test_failover.py) does
the same with real processes, ``kill -9``, robots and a mission workload.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from dispatcher.config import FacilitySettings, Settings
from dispatcher.daemon import Daemon
from tests.conftest import daemon_settings, db_pool, eventually
from tests.integration.faults.conftest import operator_token

NORTH = FacilitySettings(key="north", name="North campus")
SOUTH = FacilitySettings(key="south", name="South campus")
#: Short leases: a crash is taken over within seconds.
TAKEOVER_S = 3.0
#: What a loaded 2-core machine may add to a takeover (scheduling, the poll, the load).
MARGIN_S = 4.0


@dataclass
class Running:
    daemon: Daemon
    task: asyncio.Task[None]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.daemon.settings.api.port}"

    def roles(self) -> dict[str, str]:
        assert self.daemon.leadership is not None
        return self.daemon.leadership.roles()

    async def readyz(self) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as c:
            body: dict[str, Any] = (await c.get("/readyz")).json()
            return body

    async def crash(self) -> None:
        """As ``kill -9`` for the leases: the daemon stops without releasing them (its
        renewals stop with it), so a standby must wait for them to expire. (Cancelling
        the daemon's task instead would leak its sockets into the next test.)"""
        leadership = self.daemon.leadership
        assert leadership is not None

        async def keep_leases() -> None:
            leadership._closing = True  # no renewal, no new acquisition, no release

        leadership.release_all = keep_leases  # type: ignore[method-assign]
        await self.stop()

    async def stop(self) -> None:
        self.daemon.stop()
        await asyncio.wait_for(asyncio.gather(self.task, return_exceptions=True), 30)


@contextlib.asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[Running]:
    daemon = Daemon(settings, install_signal_handlers=False)
    task = asyncio.create_task(daemon.run(), name=f"test.{settings.daemon.instance_id}")
    run = Running(daemon, task)
    try:
        await asyncio.wait_for(asyncio.shield(daemon.wait_ready()), 60)
        yield run
    finally:
        if not task.done():
            await run.stop()


def _settings(pg_dsn: str, ns: str, prefix: str, name: str, **leadership: Any) -> Settings:
    extra: dict[str, Any] = {}
    if "facilities" in leadership:
        extra["facilities"] = leadership.pop("facilities")
        extra["fleet"] = {"default_facility": extra["facilities"][0].key}
    return daemon_settings(
        pg_dsn,
        ns,
        prefix,
        daemon={"instance_id": f"{name}-{ns}"},
        leadership={"takeover_s": TAKEOVER_S, **leadership},
        **extra,
    )


async def _wait_role(run: Running, facility: str, role: str, timeout: float) -> float:
    """Seconds until ``run`` has ``role`` for ``facility``."""
    started_at = time.monotonic()
    await eventually(lambda: run.roles().get(facility) == role, timeout=timeout)
    return time.monotonic() - started_at


async def test_one_active_one_standby_and_a_crash_is_taken_over(
    pg_dsn: str, mqtt_namespace: str, redis_prefix: str
) -> None:
    a_cfg = _settings(pg_dsn, mqtt_namespace, redis_prefix, "a")
    b_cfg = _settings(pg_dsn, mqtt_namespace, redis_prefix, "b")
    async with started(a_cfg) as a:
        assert a.roles() == {"demo-campus": "active"}  # a lone daemon: at once
        async with started(b_cfg) as b:
            assert b.roles() == {"demo-campus": "standby"}
            assert (await a.readyz())["leadership"] == {"demo-campus": "active"}
            assert (await b.readyz())["leadership"] == {"demo-campus": "standby"}
            # Operator writes work on the standby too; only the leader dispatches them.
            facility = a_cfg.default_facility
            token = await operator_token(pg_dsn, facility.id)
            places = [p.name for p in facility.places if p.node_id][:2]
            body = {"pickup": {"place": places[0]}, "dropoff": {"place": places[1]}}
            async with httpx.AsyncClient(
                base_url=b.url, headers={"Authorization": f"Bearer {token}"}, timeout=5
            ) as c:
                r = await c.post("/v1/missions", json=body)
            assert r.status_code == 201, r.text
            mission_id = uuid.UUID(r.json()["id"])
            assert b.daemon.dispatch is not None and a.daemon.dispatch is not None
            await eventually(lambda: mission_id in a.daemon.dispatch.engine.missions)  # type: ignore[union-attr]
            assert mission_id not in b.daemon.dispatch.engine.missions

            crashed_at = time.monotonic()
            await a.crash()
            await _wait_role(b, "demo-campus", "active", TAKEOVER_S + MARGIN_S)
            assert time.monotonic() - crashed_at < TAKEOVER_S + MARGIN_S
            # The new leader loaded the facility's open missions.
            await eventually(lambda: mission_id in b.daemon.dispatch.engine.missions)  # type: ignore[union-attr]
            async with db_pool(pg_dsn) as pool:
                row = await pool.fetchrow("SELECT holder, token FROM facility_leases")
            assert row is not None and row["token"] == 2
            assert row["holder"] == b.daemon.leadership.holder  # type: ignore[union-attr]


async def test_stop_hands_over_at_once(pg_dsn: str, mqtt_namespace: str, redis_prefix: str) -> None:
    # A long lease: only a release explains a fast takeover.
    a_cfg = _settings(pg_dsn, mqtt_namespace, redis_prefix, "a", takeover_s=20.0)
    b_cfg = _settings(pg_dsn, mqtt_namespace, redis_prefix, "b", takeover_s=20.0)
    async with started(a_cfg) as a, started(b_cfg) as b:
        assert (a.roles(), b.roles()) == ({"demo-campus": "active"}, {"demo-campus": "standby"})
        stopping = time.monotonic()
        await a.stop()
        await _wait_role(b, "demo-campus", "active", 10.0)
        handover = time.monotonic() - stopping
        # Well under the 20 s lease: the stop released it (measured ~1-2 s here, most of
        # it the stop itself).
        assert handover < 10.0, handover


async def test_two_daemons_split_two_facilities(
    pg_dsn: str, mqtt_namespace: str, redis_prefix: str
) -> None:
    facilities = [NORTH, SOUTH]
    a_cfg = _settings(
        pg_dsn, mqtt_namespace, redis_prefix, "a", facilities=facilities, prefer=["north"]
    )
    b_cfg = _settings(
        pg_dsn, mqtt_namespace, redis_prefix, "b", facilities=facilities, prefer=["south"]
    )
    async with started(a_cfg) as a, started(b_cfg) as b:
        assert a.roles() == {"north": "active", "south": "standby"}
        assert b.roles() == {"north": "standby", "south": "active"}
        # Each is the other's standby, and the split holds past the hold-off.
        await asyncio.sleep(TAKEOVER_S + 1.0)
        assert a.roles() == {"north": "active", "south": "standby"}
        assert b.roles() == {"north": "standby", "south": "active"}
        await b.crash()
        await _wait_role(a, "south", "active", TAKEOVER_S + MARGIN_S)
        assert a.roles() == {"north": "active", "south": "active"}


@pytest.mark.parametrize("enabled", [False])
async def test_leadership_off_dispatches_everything(
    pg_dsn: str, mqtt_namespace: str, redis_prefix: str, enabled: bool
) -> None:
    cfg = _settings(pg_dsn, mqtt_namespace, redis_prefix, "solo", enabled=enabled)
    async with started(cfg) as run:
        assert run.daemon.leadership is None
        assert (await run.readyz())["leadership"] is None
