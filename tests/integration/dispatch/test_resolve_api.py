"""``/v1/missions/{id}/resolve`` over HTTP, with a running engine on real Postgres/Redis."""

from __future__ import annotations

from dataclasses import replace

from dispatcher.auth.roles import Role
from dispatcher.config import Settings
from dispatcher.dispatch.legs import LegFailure, LegProgressKind
from tests.conftest import eventually
from tests.integration.dispatch.conftest import WARD_A, Rig, robot
from tests.integration.dispatch.test_engine import create, leg_of, status_is
from tests.integration.ops.conftest import NORTH
from tests.unit.api.harness import app_for, client_for, make_services, new_token


class TestResolveRoute:
    async def test_a_held_mission_is_shown_and_resolved_as_failed(
        self, rig: Rig, settings: Settings
    ) -> None:
        """GET lists the choices of a held mission; a nurse may not decide; an operator's
        ``fail`` fails it, with an audit row."""
        await rig.add_vehicle(robot("near", WARD_A))
        mission_id = await create(rig)
        leg = await leg_of(rig, mission_id)
        rig.progress(leg, LegProgressKind.PICKED_UP)
        await status_is(rig, mission_id, "in_progress")
        rig.progress(leg, LegProgressKind.FAILED, LegFailure.FATAL_ERROR)
        await eventually(lambda: mission_id in rig.engine.holdings.held)

        services = replace(
            make_services(settings, rig.pool, rig.redis, rig.fleet), dispatch=rig.engine
        )
        app = app_for(services)
        operator = await new_token(rig.pool, Role.OPERATOR, NORTH)
        nurse = await new_token(rig.pool, Role.NURSE, NORTH)
        path = f"/v1/missions/{mission_id}/resolve"
        async with client_for(app, operator) as client:
            shown = await client.get(path)
            assert shown.status_code == 200
            body = shown.json()
            assert body["held"] is True and body["held_reason"] == "fatal_error"
            assert set(body["allowed"]) == {"fail", "complete", "reassign"}
        async with client_for(app, nurse) as client:
            assert (await client.post(path, json={"choice": "fail"})).status_code == 403
        async with client_for(app, operator) as client:
            done = await client.post(path, json={"choice": "fail", "reason": "rider walked"})
            assert done.status_code == 200, done.text
            assert done.json()["mission"]["status"] == "failed"
        await eventually(lambda: mission_id not in rig.engine.missions)
        row = await rig.pool.fetchrow(
            "SELECT success, reason FROM audit_log WHERE action = 'mission.failed' "
            "AND resource_id = $1",
            str(mission_id),
        )
        assert row is not None and row["success"] and row["reason"] == "rider walked"

    async def test_a_choice_the_situation_forbids_is_a_conflict(
        self, rig: Rig, settings: Settings
    ) -> None:
        """A mission not held may only be failed: ``complete`` answers 409 with the choices."""
        await rig.add_vehicle(robot("near", WARD_A))
        mission_id = await create(rig)
        await leg_of(rig, mission_id)
        services = replace(
            make_services(settings, rig.pool, rig.redis, rig.fleet), dispatch=rig.engine
        )
        operator = await new_token(rig.pool, Role.OPERATOR, NORTH)
        async with client_for(app_for(services), operator) as client:
            answer = await client.post(
                f"/v1/missions/{mission_id}/resolve", json={"choice": "complete"}
            )
        assert answer.status_code == 409
        assert answer.json()["allowed"] == ["fail"]
