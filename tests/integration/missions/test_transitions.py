"""Mission transitions against the real database: atomic, append-only, refusals change nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from dispatcher.auth.roles import Role
from dispatcher.missions import store as store_module
from dispatcher.missions.domain import Actor, MissionRecord, Scope
from dispatcher.missions.errors import (
    InvalidMission,
    MissionNotFound,
    VersionConflict,
    WrongVehicle,
)
from dispatcher.missions.lifecycle import IllegalTransition, MissionEvent, MissionStatus, Priority
from dispatcher.missions.store import MissionStore
from tests.integration.missions.conftest import BODY, TokenFactory, counts

E = MissionEvent
ENGINE = Actor.system("test-engine")
AddVehicle = Callable[..., Awaitable[uuid.UUID]]


async def _create(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    r = await client.post("/v1/missions", json=BODY, headers=headers)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


async def _row(pool: asyncpg.Pool, mission_id: str | uuid.UUID) -> dict[str, Any]:
    row = await pool.fetchrow(
        "SELECT status, priority, version, updated_at, vehicle_id, completed_at "
        "FROM missions WHERE id = $1",
        uuid.UUID(str(mission_id)),
    )
    assert row is not None
    return dict(row)


async def _check_versions_match_events(pool: asyncpg.Pool) -> None:
    """Every change bumps version and writes one event: version == number of events."""
    bad = await pool.fetch(
        "SELECT m.id, m.version, count(e.seq) AS n FROM missions m "
        "LEFT JOIN mission_events e ON e.mission_id = m.id "
        "GROUP BY m.id HAVING m.version <> count(e.seq)"
    )
    assert bad == []


class TestApiTransitions:
    async def test_cancel_then_cancel_again_is_409_and_changes_nothing(
        self, client: httpx.AsyncClient, token: TokenFactory, pg_pool: asyncpg.Pool
    ) -> None:
        """The first cancel succeeds; the second is an illegal transition with no effect."""
        headers = await token(Role.OPERATOR)
        m = await _create(client, headers)
        url = f"/v1/missions/{m['id']}/cancel"
        first = await client.post(url, json={"reason": "not needed"}, headers=headers)
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "cancelled"
        assert first.json()["completed_at"] is not None
        before = await _row(pg_pool, m["id"])
        assert await counts(pg_pool) == (1, 2)

        again = await client.post(url, headers=headers)
        assert again.status_code == 409
        problem = again.json()
        assert problem["title"] == "Illegal transition"
        assert problem["status_now"] == "cancelled"
        assert problem["allowed_events"] == []
        assert await _row(pg_pool, m["id"]) == before
        assert await counts(pg_pool) == (1, 2)
        refused = await pg_pool.fetchrow(
            "SELECT * FROM audit_log WHERE action = 'mission.cancel' AND NOT success"
        )
        assert refused is not None
        assert refused["reason"] == "illegal_transition"

    async def test_timeline_shows_each_step_with_its_reason(
        self, client: httpx.AsyncClient, token: TokenFactory
    ) -> None:
        """GET returns the mission and its events oldest first, with actor and details."""
        headers = await token(Role.OPERATOR)
        m = await _create(client, headers)
        await client.post(
            f"/v1/missions/{m['id']}/priority", json={"priority": "urgent"}, headers=headers
        )
        await client.post(f"/v1/missions/{m['id']}/cancel", json={"reason": "x"}, headers=headers)
        r = await client.get(f"/v1/missions/{m['id']}", headers=headers)
        assert r.status_code == 200
        timeline = r.json()["timeline"]
        assert [e["event"] for e in timeline] == ["created", "priority_changed", "cancelled"]
        assert [e["to_status"] for e in timeline] == ["pending", "pending", "cancelled"]
        assert timeline[0]["from_status"] is None
        assert timeline[1]["details"] == {"old": "normal", "new": "urgent"}
        assert timeline[2]["details"] == {"reason": "x"}
        assert all(e["actor"] == m["created_by"] for e in timeline)
        assert [e["seq"] for e in timeline] == sorted(e["seq"] for e in timeline)

    async def test_priority_change_on_a_completed_mission_is_409(
        self,
        client: httpx.AsyncClient,
        token: TokenFactory,
        pg_pool: asyncpg.Pool,
        store: MissionStore,
        add_vehicle: AddVehicle,
    ) -> None:
        """A completed mission's priority is history: 409, and the row is untouched."""
        headers = await token(Role.OPERATOR)
        m = await _create(client, headers)
        mid = uuid.UUID(m["id"])
        vid = await add_vehicle()
        await store.transition(mid, E.ASSIGNED, actor=ENGINE, vehicle_id=vid)
        for ev in (E.STARTED, E.PICKUP_ARRIVED, E.PICKUP_COMPLETED, E.COMPLETED):
            await store.transition(mid, ev, actor=ENGINE)
        before = await _row(pg_pool, mid)
        n_before = await counts(pg_pool)

        r = await client.post(
            f"/v1/missions/{mid}/priority", json={"priority": "urgent"}, headers=headers
        )
        assert r.status_code == 409
        assert r.json()["status_now"] == "completed"
        assert await _row(pg_pool, mid) == before
        assert await counts(pg_pool) == n_before

    async def test_setting_the_current_priority_records_nothing(
        self, client: httpx.AsyncClient, token: TokenFactory, pg_pool: asyncpg.Pool
    ) -> None:
        """A priority change to the priority it already has is a 200 no-op."""
        headers = await token(Role.OPERATOR)
        m = await _create(client, headers)
        r = await client.post(
            f"/v1/missions/{m['id']}/priority", json={"priority": "normal"}, headers=headers
        )
        assert r.status_code == 200
        assert r.json()["version"] == 1
        assert await counts(pg_pool) == (1, 1)

    async def test_concurrent_cancels_succeed_once(
        self, client: httpx.AsyncClient, token: TokenFactory, pg_pool: asyncpg.Pool
    ) -> None:
        """Racing cancels serialise on the row lock: one 200, the rest 409, one event."""
        headers = await token(Role.OPERATOR)
        m = await _create(client, headers)
        answers = await asyncio.gather(
            *(client.post(f"/v1/missions/{m['id']}/cancel", headers=headers) for _ in range(6))
        )
        assert sorted(r.status_code for r in answers) == [200] + [409] * 5
        assert await counts(pg_pool) == (1, 2)

    async def test_unknown_mission_is_404(
        self, client: httpx.AsyncClient, token: TokenFactory
    ) -> None:
        """Cancelling, prioritising or reading a mission that does not exist is a 404."""
        headers = await token(Role.ADMIN, None)
        missing = uuid.uuid4()
        assert (await client.get(f"/v1/missions/{missing}", headers=headers)).status_code == 404
        r = await client.post(f"/v1/missions/{missing}/cancel", headers=headers)
        assert r.status_code == 404
        r = await client.post(
            f"/v1/missions/{missing}/priority", json={"priority": "low"}, headers=headers
        )
        assert r.status_code == 404
        r = await client.get("/v1/missions/not-a-uuid", headers=headers)
        assert r.status_code == 422


class TestStoreTransitions:
    async def _mission(
        self, client: httpx.AsyncClient, token: TokenFactory, store: MissionStore
    ) -> MissionRecord:
        m = await _create(client, await token(Role.OPERATOR))
        rec = await store.get(uuid.UUID(m["id"]), Scope.everything())
        assert rec is not None
        return rec

    async def test_full_lifecycle_records_every_step(
        self,
        client: httpx.AsyncClient,
        token: TokenFactory,
        store: MissionStore,
        pg_pool: asyncpg.Pool,
        add_vehicle: AddVehicle,
    ) -> None:
        """pending -> assigned -> in_progress -> completed, one event per step."""
        rec = await self._mission(client, token, store)
        vid = await add_vehicle()
        steps = [
            E.OFFERED, E.ASSIGNED, E.STARTED, E.PICKUP_ARRIVED, E.PICKUP_COMPLETED,
            E.IN_TRANSIT, E.DROPOFF_ARRIVED, E.DROPOFF_COMPLETED, E.COMPLETED,
        ]  # fmt: skip
        for ev in steps:
            result = await store.transition(rec.id, ev, actor=ENGINE, vehicle_id=vid)
            assert result.event is not None
            assert result.event.vehicle_id == vid
        final = await store.get(rec.id, Scope.everything())
        assert final is not None
        assert final.status is MissionStatus.COMPLETED
        assert final.vehicle_id == vid
        assert final.completed_at is not None
        events = await store.timeline(rec.id)
        assert [e.event for e in events] == [E.CREATED, *steps]
        assert all(e.actor == "system:test-engine" for e in events[1:])
        await _check_versions_match_events(pg_pool)
        # Engine transitions are recorded as events, not in the audit log.
        assert (
            await pg_pool.fetchval(
                "SELECT count(*) FROM audit_log WHERE resource_id = $1", str(rec.id)
            )
            == 1
        )  # the API create only

    async def test_decline_returns_an_assigned_mission_to_pending(
        self,
        client: httpx.AsyncClient,
        token: TokenFactory,
        store: MissionStore,
        add_vehicle: AddVehicle,
    ) -> None:
        """A driver declining an assigned mission releases it: pending, no vehicle."""
        rec = await self._mission(client, token, store)
        vid = await add_vehicle()
        await store.transition(rec.id, E.ASSIGNED, actor=ENGINE, vehicle_id=vid)
        result = await store.transition(rec.id, E.DECLINED, actor=ENGINE, vehicle_id=vid)
        assert result.mission.status is MissionStatus.PENDING
        assert result.mission.vehicle_id is None
        assert result.event is not None
        assert result.event.vehicle_id == vid

    async def test_reassign_keeps_assigned_and_records_the_previous_vehicle(
        self,
        client: httpx.AsyncClient,
        token: TokenFactory,
        store: MissionStore,
        add_vehicle: AddVehicle,
    ) -> None:
        """Reassigning changes the vehicle, keeps the status and notes the old vehicle."""
        rec = await self._mission(client, token, store)
        v1, v2 = await add_vehicle(), await add_vehicle()
        await store.transition(rec.id, E.ASSIGNED, actor=ENGINE, vehicle_id=v1)
        result = await store.transition(rec.id, E.REASSIGNED, actor=ENGINE, vehicle_id=v2)
        assert result.mission.status is MissionStatus.ASSIGNED
        assert result.mission.vehicle_id == v2
        assert result.event is not None
        assert result.event.details["previous_vehicle_id"] == str(v1)

    async def test_refusals_change_nothing(
        self,
        client: httpx.AsyncClient,
        token: TokenFactory,
        store: MissionStore,
        pg_pool: asyncpg.Pool,
        add_vehicle: AddVehicle,
    ) -> None:
        """Illegal events, stale versions, wrong vehicles and unknown ids all leave no trace."""
        rec = await self._mission(client, token, store)
        vid, other = await add_vehicle(), await add_vehicle()
        await store.transition(rec.id, E.ASSIGNED, actor=ENGINE, vehicle_id=vid)
        before = await _row(pg_pool, rec.id)
        n_before = await counts(pg_pool)
        with pytest.raises(IllegalTransition) as illegal:
            await store.transition(rec.id, E.PICKUP_ARRIVED, actor=ENGINE)
        assert illegal.value.status is MissionStatus.ASSIGNED
        with pytest.raises(VersionConflict) as stale:
            await store.transition(rec.id, E.STARTED, actor=ENGINE, expected_version=1)
        assert stale.value.actual == 2
        with pytest.raises(WrongVehicle):
            await store.transition(rec.id, E.STARTED, actor=ENGINE, vehicle_id=other)
        with pytest.raises(MissionNotFound):
            await store.transition(uuid.uuid4(), E.STARTED, actor=ENGINE)
        assert await _row(pg_pool, rec.id) == before
        assert await counts(pg_pool) == n_before

    async def test_assigning_an_unknown_vehicle_is_refused(
        self,
        client: httpx.AsyncClient,
        token: TokenFactory,
        store: MissionStore,
        pg_pool: asyncpg.Pool,
    ) -> None:
        """A vehicle id that is not in the vehicles table is refused; nothing changes."""
        rec = await self._mission(client, token, store)
        with pytest.raises(InvalidMission) as exc:
            await store.transition(rec.id, E.ASSIGNED, actor=ENGINE, vehicle_id=uuid.uuid4())
        assert exc.value.field == "vehicle_id"
        assert (await _row(pg_pool, rec.id))["status"] == "pending"

    async def test_a_failure_after_the_update_rolls_the_update_back(
        self,
        client: httpx.AsyncClient,
        token: TokenFactory,
        store: MissionStore,
        pg_pool: asyncpg.Pool,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Row and event are one transaction: if the event cannot be written, the row stays.

        The event's insert is made to fail at run time, after the row's update (a division
        by zero over the updated row, in the statement that writes both)."""
        rec = await self._mission(client, token, store)
        before = await _row(pg_pool, rec.id)
        sql = store_module._UPDATE_WITH_EVENT
        assert "$12::jsonb" in sql
        monkeypatch.setattr(
            store_module,
            "_UPDATE_WITH_EVENT",
            sql.replace("$12::jsonb", "$12::jsonb || to_jsonb(1 / (version - version))"),
        )
        with pytest.raises(asyncpg.DivisionByZeroError):
            await store.transition(rec.id, E.CANCELLED, actor=ENGINE)
        assert await _row(pg_pool, rec.id) == before
        assert await counts(pg_pool) == (1, 1)

    async def test_pending_queue_is_most_urgent_first(
        self, client: httpx.AsyncClient, token: TokenFactory, store: MissionStore
    ) -> None:
        """The dispatch queue lists pending missions by priority, then age."""
        headers = await token(Role.OPERATOR)
        ids: dict[str, list[str]] = {}
        for p in ("low", "urgent", "normal", "urgent"):
            r = await client.post("/v1/missions", json={**BODY, "priority": p}, headers=headers)
            ids.setdefault(p, []).append(r.json()["id"])
        await store.transition(uuid.UUID(ids["normal"][0]), E.CANCELLED, actor=ENGINE)
        queue = await store.pending_queue()
        assert [str(m.id) for m in queue] == [*ids["urgent"], *ids["low"]]
        assert [m.priority for m in queue] == [Priority.URGENT, Priority.URGENT, Priority.LOW]


class TestAppendOnly:
    @pytest.mark.parametrize(
        "sql",
        [
            "UPDATE mission_events SET actor = 'someone else'",
            "DELETE FROM mission_events",
            "TRUNCATE mission_events",
        ],
    )
    async def test_the_database_refuses_to_rewrite_history(
        self, client: httpx.AsyncClient, token: TokenFactory, pg_pool: asyncpg.Pool, sql: str
    ) -> None:
        """UPDATE, DELETE and TRUNCATE of mission_events fail in the database itself."""
        await _create(client, await token(Role.OPERATOR))
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await pg_pool.execute(sql)
        assert await counts(pg_pool) == (1, 1)
