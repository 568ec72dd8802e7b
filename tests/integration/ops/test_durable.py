"""The write path while PostgreSQL is away: the spool keeps the engine's mission events and
audit rows, flushes them in order, never twice, and the audit chain still verifies."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest

from dispatcher.audit.log import AuditEntry, seal_pending, verify_chain
from dispatcher.auth.roles import Role
from dispatcher.missions.lifecycle import MissionEvent, MissionStatus
from dispatcher.missions.store import CreateResult, TransitionResult
from dispatcher.ops.caller import Caller
from dispatcher.ops.durable import DurableWrites
from dispatcher.ops.missions import MissionOps, MissionRefusal, MissionRefused
from dispatcher.storage.db import create_pool
from dispatcher.storage.spool import Spool, SpoolFull
from tests.conftest import ADMIN_DSN
from tests.integration.ops.conftest import NORTH, api_caller
from tests.integration.ops.test_mission_ops import _draft

SYSTEM = Caller.system("dispatch")
ADMIN_BASE = ADMIN_DSN.rpartition("/")[0]


async def _durable(pool: asyncpg.Pool, path: Path, max_bytes: int = 1_000_000) -> DurableWrites:
    spool = Spool(path, max_bytes=max_bytes)
    await spool.load()
    durable = DurableWrites(pool, spool, flush_interval_s=0.1)
    durable.attach(MissionOps(pool, durable))
    return durable


async def _closed_pool(pool: asyncpg.Pool) -> asyncpg.Pool:
    """A pool whose every use fails as an unreachable database does (InterfaceError)."""
    name = await pool.fetchval("SELECT current_database()")
    closed = await create_pool(f"{ADMIN_BASE}/{name}", min_size=1, max_size=1)
    await closed.close()
    return closed


async def _vehicle(pool: asyncpg.Pool) -> uuid.UUID:
    vid = uuid.uuid4()
    await pool.execute(
        "INSERT INTO vehicles (id, facility_id, kind, manufacturer, serial) "
        "VALUES ($1, $2, 'robot', 'acme', $3)",
        vid, NORTH.id, vid.hex[:8],
    )  # fmt: skip
    return vid


async def _events(pool: asyncpg.Pool, mission_id: uuid.UUID) -> list[str]:
    rows = await pool.fetch(
        "SELECT event FROM mission_events WHERE mission_id = $1 ORDER BY seq", mission_id
    )
    return [r["event"] for r in rows]


class TestSpooledMissionEvents:
    async def test_engine_steps_while_the_database_is_away_are_flushed_in_order_once(
        self, pool: asyncpg.Pool, tmp_path: Path
    ) -> None:
        """Three steps spooled against the engine's copy of the mission; flushed: the
        mission row and its events are as if written live. Flushing the same file again
        (a crash before the spool was truncated) stores nothing twice."""
        durable = await _durable(pool, tmp_path / "spool.jsonl")
        nurse = api_caller(Role.OPERATOR)
        created = await MissionOps(pool).create(nurse, NORTH.spec, lambda: _draft(nurse))
        assert isinstance(created, CreateResult)
        vehicle = await _vehicle(pool)
        away = MissionOps(await _closed_pool(pool), durable)
        known = created.mission
        for event in (MissionEvent.ASSIGNED, MissionEvent.STARTED, MissionEvent.PICKUP_ARRIVED):
            result = await away.transition(SYSTEM, known.id, event, vehicle_id=vehicle, known=known)
            assert isinstance(result, TransitionResult)
            assert result.event is None  # spooled, not written
            known = result.mission
        assert known.status is MissionStatus.IN_PROGRESS
        assert len(durable.spool) == 3
        saved = durable.spool.path.read_bytes()

        assert await durable.flush() == 3
        assert durable.spool.empty and not durable.degraded
        assert await _events(pool, known.id) == ["created", "assigned", "started", "pickup_arrived"]
        status = await pool.fetchval("SELECT status FROM missions WHERE id = $1", known.id)
        assert status == "in_progress"

        durable.spool.path.write_bytes(saved)  # the daemon died before truncating
        again = await _durable(pool, durable.spool.path)
        assert len(again.spool) == 3
        await again.flush()
        assert await _events(pool, known.id) == ["created", "assigned", "started", "pickup_arrived"]
        assert await pool.fetchval("SELECT count(*) FROM spool_applied") == 3

    async def test_an_illegal_step_is_refused_before_it_is_spooled(
        self, pool: asyncpg.Pool, tmp_path: Path
    ) -> None:
        durable = await _durable(pool, tmp_path / "spool.jsonl")
        nurse = api_caller(Role.OPERATOR)
        created = await MissionOps(pool).create(nurse, NORTH.spec, lambda: _draft(nurse))
        assert isinstance(created, CreateResult)
        away = MissionOps(await _closed_pool(pool), durable)
        result = await away.transition(
            SYSTEM, created.mission.id, MissionEvent.COMPLETED, known=created.mission
        )
        assert isinstance(result, MissionRefused)
        assert result.reason is MissionRefusal.ILLEGAL_TRANSITION
        assert durable.spool.empty


class TestSpooledAudit:
    async def test_audit_rows_spooled_then_chained_and_verified(
        self, pool: asyncpg.Pool, tmp_path: Path
    ) -> None:
        spool = Spool(tmp_path / "spool.jsonl", max_bytes=1_000_000)
        await spool.load()
        away = DurableWrites(await _closed_pool(pool), spool, flush_interval_s=0.1)
        for i in range(3):
            row = AuditEntry("vehicle.pause", "vehicle", str(i), True, details={"n": i})
            await away.audit(row)
        assert len(spool) == 3
        back = DurableWrites(pool, spool, flush_interval_s=0.1)
        assert await back.flush() == 3
        await seal_pending(pool)
        report = await verify_chain(pool)
        assert report.ok and report.rows_checked == 3
        rows = await pool.fetch("SELECT resource_id, details FROM audit_log ORDER BY seq")
        assert [r["resource_id"] for r in rows] == ["0", "1", "2"]  # in order
        assert all("spooled_at" in r["details"] for r in rows)


class TestFullSpool:
    async def test_new_missions_are_refused_when_the_spool_is_full(
        self, pool: asyncpg.Pool, tmp_path: Path
    ) -> None:
        """No new work is taken that could not be recorded: create answers SPOOL_FULL (503
        in the API); nothing is written."""
        durable = await _durable(pool, tmp_path / "spool.jsonl", max_bytes=4096)
        for _ in range(4):
            await durable.spool.append("audit", {"pad": "x" * 900})
        assert not durable.spool.has_room()
        nurse = api_caller(Role.OPERATOR)
        outcome = await MissionOps(pool, durable).create(nurse, NORTH.spec, lambda: _draft(nurse))
        assert isinstance(outcome, MissionRefused)
        assert outcome.reason is MissionRefusal.SPOOL_FULL
        assert await pool.fetchval("SELECT count(*) FROM missions") == 0

    async def test_a_full_spool_with_the_database_away_refuses_the_audit_row(
        self, pool: asyncpg.Pool, tmp_path: Path
    ) -> None:
        """The caller decides: a vehicle command's audit goes through record_quietly-like
        handling (logged); here the refusal is the SpoolFull the caller sees."""
        spool = Spool(tmp_path / "spool.jsonl", max_bytes=4096)
        await spool.load()
        away = DurableWrites(await _closed_pool(pool), spool, flush_interval_s=0.1)
        big = AuditEntry("vehicle.estop", "vehicle", "x", True, details={"pad": "x" * 3000})
        await away.audit(big)
        with pytest.raises(SpoolFull):
            await away.audit(big)
