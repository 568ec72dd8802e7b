"""Mission operations write one audit row per call, success or refusal, in real Postgres."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from dispatcher.api.mission_mapping import build_draft
from dispatcher.api.mission_schemas import MissionCreate
from dispatcher.auth.roles import Role
from dispatcher.missions.domain import MissionDraft
from dispatcher.missions.lifecycle import MissionEvent, MissionStatus, Priority
from dispatcher.missions.store import CreateResult, TransitionResult
from dispatcher.ops.caller import Caller
from dispatcher.ops.missions import MissionOps, MissionRefusal, MissionRefused
from tests.integration.ops.conftest import NORTH, SOUTH, api_caller, audit_rows

BODY: dict[str, Any] = {"pickup": {"place": "Ward A"}, "dropoff": {"place": "Radiology"}}


def _draft(caller: Caller, key: str | None = None, **body: Any) -> MissionDraft:
    request = MissionCreate.model_validate({**BODY, **body})
    return build_draft(request, NORTH.spec, created_by=caller.subject, idempotency_key=key)


async def _create(ops: MissionOps, caller: Caller, key: str | None = None) -> CreateResult:
    outcome = await ops.create(caller, NORTH.spec, lambda: _draft(caller, key))
    assert isinstance(outcome, CreateResult)
    return outcome


class TestCreate:
    async def test_created_mission_is_audited_with_its_caller(self, pool: asyncpg.Pool) -> None:
        """A created mission has one mission.create row naming token, role and client."""
        caller = api_caller(Role.NURSE)
        created = await _create(MissionOps(pool), caller)
        [row] = await audit_rows(pool)
        assert (row.action, row.success, row.resource_id) == (
            "mission.create",
            True,
            str(created.mission.id),
        )
        assert (row.actor_token_id, row.actor_role, row.source) == (
            caller.token_id,
            "nurse",
            "192.0.2.7",
        )
        assert row.facility_id == NORTH.id
        assert row.details["new"]["status"] == "pending"

    async def test_other_facility_is_refused_and_audited(self, pool: asyncpg.Pool) -> None:
        """A token of south creating in north is refused before its body is even read."""
        caller = api_caller(Role.NURSE, SOUTH)

        def build() -> MissionDraft:
            raise AssertionError("the draft of a refused request must not be built")

        outcome = await MissionOps(pool).create(caller, NORTH.spec, build)
        assert outcome == MissionRefused(MissionRefusal.OTHER_FACILITY)
        [row] = await audit_rows(pool)
        assert (row.success, row.reason, row.details) == (
            False,
            "other_facility",
            {"facility": "north"},
        )
        assert await pool.fetchval("SELECT count(*) FROM missions") == 0

    async def test_idempotency_conflict_is_refused_and_audited(self, pool: asyncpg.Pool) -> None:
        """The same key with another body is refused, naming the first mission."""
        ops, caller = MissionOps(pool), api_caller(Role.NURSE)
        first = await _create(ops, caller, key="k1")
        outcome = await ops.create(caller, NORTH.spec, lambda: _draft(caller, "k1", notes="other"))
        assert isinstance(outcome, MissionRefused)
        assert outcome.reason is MissionRefusal.IDEMPOTENCY_CONFLICT
        assert outcome.mission_id == first.mission.id
        rows = await audit_rows(pool)
        assert [(r.success, r.reason) for r in rows] == [
            (True, None),
            (False, "idempotency_conflict"),
        ]

    async def test_replay_writes_no_second_row(self, pool: asyncpg.Pool) -> None:
        """Replaying an idempotent request returns the mission and audits nothing new."""
        ops, caller = MissionOps(pool), api_caller(Role.NURSE)
        await _create(ops, caller, key="k1")
        again = await _create(ops, caller, key="k1")
        assert not again.created
        assert len(await audit_rows(pool)) == 1

    async def test_invalid_place_is_refused_unaudited(self, pool: asyncpg.Pool) -> None:
        """Input that is wrong here (an unknown place) is a 422, not an audited event."""
        caller = api_caller(Role.NURSE)
        outcome = await MissionOps(pool).create(
            caller, NORTH.spec, lambda: _draft(caller, pickup={"place": "Nowhere"})
        )
        assert isinstance(outcome, MissionRefused)
        assert outcome.reason is MissionRefusal.INVALID
        assert await audit_rows(pool) == []


class TestTransitions:
    async def test_cancel_is_audited_with_old_and_new(self, pool: asyncpg.Pool) -> None:
        """A cancel commits the mission, its event and its audit row together."""
        ops, caller = MissionOps(pool), api_caller(Role.OPERATOR)
        created = await _create(ops, caller)
        outcome = await ops.cancel(caller, created.mission.id, reason="no longer needed")
        assert isinstance(outcome, TransitionResult)
        assert outcome.mission.status is MissionStatus.CANCELLED
        row = (await audit_rows(pool))[-1]
        assert (row.action, row.success, row.reason) == (
            "mission.cancel",
            True,
            "no longer needed",
        )
        assert row.details["old"]["status"] == "pending"
        assert row.details["new"]["status"] == "cancelled"

    async def test_illegal_transition_is_refused_and_audited(self, pool: asyncpg.Pool) -> None:
        """Cancelling a cancelled mission is refused with the status it is at."""
        ops, caller = MissionOps(pool), api_caller(Role.OPERATOR)
        created = await _create(ops, caller)
        await ops.cancel(caller, created.mission.id)
        outcome = await ops.cancel(caller, created.mission.id)
        assert isinstance(outcome, MissionRefused)
        assert outcome.reason is MissionRefusal.ILLEGAL_TRANSITION
        row = (await audit_rows(pool))[-1]
        assert (row.success, row.reason, row.details["status"]) == (
            False,
            "illegal_transition",
            "cancelled",
        )
        assert row.facility_id == NORTH.id

    async def test_unknown_mission_is_refused_and_audited(self, pool: asyncpg.Pool) -> None:
        """A mission that does not exist is refused as not found, and audited."""
        mission_id = uuid.uuid4()
        outcome = await MissionOps(pool).prioritize(
            api_caller(Role.OPERATOR), mission_id, Priority.URGENT
        )
        assert isinstance(outcome, MissionRefused)
        assert outcome == MissionRefused(MissionRefusal.NOT_FOUND, mission_id, outcome.error)
        [row] = await audit_rows(pool)
        assert (row.action, row.reason, row.resource_id) == (
            "mission.prioritize",
            "not_found",
            str(mission_id),
        )

    async def test_not_owner_is_refused_and_audited(self, pool: asyncpg.Pool) -> None:
        """A nurse may cancel only the missions it created."""
        ops = MissionOps(pool)
        created = await _create(ops, api_caller(Role.NURSE))
        other_nurse = api_caller(Role.NURSE)
        outcome = await ops.cancel(other_nurse, created.mission.id)
        assert isinstance(outcome, MissionRefused)
        assert outcome.reason is MissionRefusal.NOT_OWNER
        row = (await audit_rows(pool))[-1]
        assert (row.reason, row.facility_id, row.actor_token_id) == (
            "not_owner",
            NORTH.id,
            other_nurse.token_id,
        )

    async def test_version_conflict_is_refused_and_audited(self, pool: asyncpg.Pool) -> None:
        """A stale expected version is refused with both versions in the row."""
        ops, caller = MissionOps(pool), api_caller(Role.OPERATOR)
        created = await _create(ops, caller)
        outcome = await ops.transition(
            caller, created.mission.id, MissionEvent.CANCELLED, expected_version=7
        )
        assert isinstance(outcome, MissionRefused)
        assert outcome.reason is MissionRefusal.VERSION_CONFLICT
        row = (await audit_rows(pool))[-1]
        assert (row.details["expected_version"], row.details["version"]) == (7, 1)

    async def test_system_caller_is_not_audited(self, pool: asyncpg.Pool) -> None:
        """The daemon's own transitions are in mission_events, not in the audit log."""
        ops = MissionOps(pool)
        created = await _create(ops, api_caller(Role.NURSE))
        outcome = await ops.cancel(Caller.system("planner"), created.mission.id)
        assert isinstance(outcome, TransitionResult)
        assert outcome.event is not None and outcome.event.actor == "system:planner"
        assert [r.action for r in await audit_rows(pool)] == ["mission.create"]

    @pytest.mark.parametrize("role", [Role.CAREGIVER, Role.GUEST])
    async def test_prioritize_without_permission_is_refused(
        self, pool: asyncpg.Pool, role: Role
    ) -> None:
        """A role without mission_prioritize is refused (and audited) by the operation."""
        ops = MissionOps(pool)
        created = await _create(ops, api_caller(Role.NURSE))
        outcome = await ops.prioritize(api_caller(role), created.mission.id, Priority.URGENT)
        assert isinstance(outcome, MissionRefused)
        assert outcome.reason is MissionRefusal.FORBIDDEN
        assert (await audit_rows(pool))[-1].reason == "forbidden"
