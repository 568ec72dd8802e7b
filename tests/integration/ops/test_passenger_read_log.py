"""Passenger-read audit rows written in batches by the daemon's task (PassengerReadLog)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg

from dispatcher.audit.log import seal_all, verify_chain
from dispatcher.auth.roles import Role
from dispatcher.missions.domain import Location, MissionRecord
from dispatcher.missions.lifecycle import MissionStatus, Priority
from dispatcher.ops.passenger_reads import PassengerReadLog
from tests.conftest import eventually
from tests.integration.ops.conftest import NORTH, api_caller


def mission(passenger: str | None = "P-1") -> MissionRecord:
    now = datetime.now(UTC)
    return MissionRecord(
        id=uuid.uuid4(), facility_id=NORTH.id, status=MissionStatus.PENDING,
        priority=Priority.NORMAL, pickup=Location(52.5218, 13.4061, "Ward A"),
        dropoff=Location(52.5209, 13.4095, "Radiology"), window_start=None, window_end=None,
        requirements={}, passenger_ref=passenger, passenger_name=None, notes=None,
        created_by="t", vehicle_id=None, version=1, created_at=now, updated_at=now,
        completed_at=None,
    )  # fmt: skip


async def reads(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(
        await pool.fetch("SELECT * FROM audit_log WHERE action = 'missions.read' ORDER BY id")
    )


class TestPassengerReadLog:
    async def test_without_the_task_each_read_is_written_at_once(self, pool: asyncpg.Pool) -> None:
        """Outside the daemon (no run task), record() returns once its row is stored."""
        log = PassengerReadLog(pool)
        await log.record(api_caller(Role.OPERATOR), [mission()])
        assert len(await reads(pool)) == 1
        assert log.pending == 0

    async def test_reads_are_written_together_in_order_and_chain(self, pool: asyncpg.Pool) -> None:
        """With the task running, reads are queued and written in one batch, in the order
        they were recorded, with the reader, the facility and the missions named; the
        sealer chains them like any row."""
        log = PassengerReadLog(pool, interval_s=0.2)
        task = asyncio.create_task(log.run())
        try:
            await asyncio.sleep(0)  # the task is running
            caller = api_caller(Role.OPERATOR)
            shown = [mission() for _ in range(5)]
            for m in shown:
                await log.record(caller, [m])
            await log.record(caller, [mission(passenger=None)])  # no passenger: no row
            assert log.pending == 5

            async def written() -> bool:
                return len(await reads(pool)) == 5

            await eventually(written)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        rows = await reads(pool)
        assert [r["resource_id"] for r in rows] == [str(m.id) for m in shown]
        assert {r["actor_role"] for r in rows} == {"operator"}
        assert {r["facility_id"] for r in rows} == {NORTH.id}
        assert log.batches == 1
        await seal_all(pool)
        assert (await verify_chain(pool)).ok

    async def test_a_full_queue_makes_the_reader_wait_for_the_write(
        self, pool: asyncpg.Pool
    ) -> None:
        """Memory is bounded: at max_pending rows queued, the next read writes them first."""
        log = PassengerReadLog(pool, interval_s=3600, max_pending=2)
        task = asyncio.create_task(log.run())
        try:
            await asyncio.sleep(0)
            caller = api_caller(Role.OPERATOR)
            for _ in range(2):
                await log.record(caller, [mission()])
            assert await reads(pool) == []
            await log.record(caller, [mission()])
            assert len(await reads(pool)) == 2
            assert log.pending == 1
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def test_close_writes_what_is_queued(self, pool: asyncpg.Pool) -> None:
        """At shutdown the queue is written; later reads are written at once."""
        log = PassengerReadLog(pool, interval_s=3600)
        task = asyncio.create_task(log.run())
        await asyncio.sleep(0)
        await log.record(api_caller(Role.OPERATOR), [mission()])
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await log.close()
        assert len(await reads(pool)) == 1
        await log.record(api_caller(Role.OPERATOR), [mission()])
        assert len(await reads(pool)) == 2
