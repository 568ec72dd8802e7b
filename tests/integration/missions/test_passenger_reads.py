"""Reads of passenger data leave audit rows (api.audit_passenger_reads, on by default)."""

from __future__ import annotations

import dataclasses

import asyncpg
import httpx

from dispatcher.api.app import create_app
from dispatcher.auth.roles import Role
from dispatcher.services import Services
from tests.integration.missions.conftest import BODY, NORTH, TokenFactory

PASSENGER = {"passenger": {"ref": "P-17", "display_name": "Mr. B."}}


async def _reads(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(
        await pool.fetch("SELECT * FROM audit_log WHERE action = 'missions.read' ORDER BY id")
    )


class TestPassengerReads:
    async def test_get_and_list_of_a_passenger_mission_are_audited(
        self, client: httpx.AsyncClient, token: TokenFactory, pg_pool: asyncpg.Pool
    ) -> None:
        """Who was shown which passenger is recorded: one row per response, naming the
        missions, with the reader's token and role."""
        nurse = await token(Role.NURSE)
        r = await client.post("/v1/missions", json={**BODY, **PASSENGER}, headers=nurse)
        assert r.status_code == 201, r.text
        mission_id = r.json()["id"]
        viewer = await token(Role.OPERATOR)
        assert (await client.get(f"/v1/missions/{mission_id}", headers=viewer)).status_code == 200
        assert (await client.get("/v1/missions", headers=viewer)).status_code == 200
        one, page = await _reads(pg_pool)
        assert one["resource_id"] == mission_id
        assert one["actor_role"] == "operator"
        assert one["facility_id"] == NORTH.id
        assert page["details"] == {"passengers": 1, "mission_ids": [mission_id]}

    async def test_missions_without_passengers_cost_no_row(
        self, client: httpx.AsyncClient, token: TokenFactory, pg_pool: asyncpg.Pool
    ) -> None:
        """Polling pages that hold no passenger data writes nothing."""
        nurse = await token(Role.NURSE)
        assert (await client.post("/v1/missions", json=BODY, headers=nurse)).status_code == 201
        assert (await client.get("/v1/missions", headers=nurse)).status_code == 200
        assert await _reads(pg_pool) == []

    async def test_the_setting_turns_it_off(
        self, services: Services, token: TokenFactory, pg_pool: asyncpg.Pool
    ) -> None:
        """api.audit_passenger_reads = false: no read rows."""
        api = services.settings.api.model_copy(update={"audit_passenger_reads": False})
        settings = services.settings.model_copy(update={"api": api})
        app = create_app(dataclasses.replace(services, settings=settings))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            nurse = await token(Role.NURSE)
            r = await client.post("/v1/missions", json={**BODY, **PASSENGER}, headers=nurse)
            assert r.status_code == 201
            assert (await client.get("/v1/missions", headers=nurse)).status_code == 200
        assert await _reads(pg_pool) == []
