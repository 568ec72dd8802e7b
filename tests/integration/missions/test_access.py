"""Who may do what with missions: roles, facility isolation, own-only visibility, lists."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from dispatcher.auth.roles import Role
from tests.integration.missions.conftest import BODY, NORTH, SOUTH, Headers, TokenFactory, counts

R = Role
ENDPOINTS = ("create", "list", "get", "cancel", "priority")

#: role -> expected status per endpoint (create, list, get, cancel own, priority).
ROLE_TABLE: dict[Role, tuple[int, int, int, int, int]] = {
    R.ADMIN:       (201, 200, 200, 200, 200),
    R.OPERATOR:    (201, 200, 200, 200, 200),
    R.NURSE:       (201, 200, 200, 200, 403),
    R.CAREGIVER:   (201, 200, 200, 200, 403),
    R.MAINTENANCE: (403, 403, 403, 403, 403),
    R.GUEST:       (403, 403, 403, 403, 403),
}  # fmt: skip

CASES = [
    pytest.param(role, endpoint, ROLE_TABLE[role][i], id=f"{role.value}-{endpoint}")
    for role in Role
    for i, endpoint in enumerate(ENDPOINTS)
]


async def _create(client: httpx.AsyncClient, headers: Headers, **extra: Any) -> dict[str, Any]:
    r = await client.post("/v1/missions", json={**BODY, **extra}, headers=headers)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


async def _call(
    client: httpx.AsyncClient, endpoint: str, headers: Headers, mission_id: str
) -> httpx.Response:
    if endpoint == "create":
        return await client.post("/v1/missions", json=BODY, headers=headers)
    if endpoint == "list":
        return await client.get("/v1/missions", headers=headers)
    if endpoint == "get":
        return await client.get(f"/v1/missions/{mission_id}", headers=headers)
    if endpoint == "cancel":
        return await client.post(f"/v1/missions/{mission_id}/cancel", headers=headers)
    return await client.post(
        f"/v1/missions/{mission_id}/priority", json={"priority": "high"}, headers=headers
    )


class TestRoles:
    def test_the_table_covers_every_role(self) -> None:
        """Each role has a row."""
        assert set(ROLE_TABLE) == set(Role)

    @pytest.mark.parametrize(("role", "endpoint", "expected"), CASES)
    async def test_role_against_endpoint(
        self,
        client: httpx.AsyncClient,
        token: TokenFactory,
        pg_pool: asyncpg.Pool,
        role: Role,
        endpoint: str,
        expected: int,
    ) -> None:
        """Each role gets the status of the table; the mission is the caller's own if it may
        create one (so own-only roles are tested on what they are allowed to touch)."""
        headers = await token(role, None if role is R.ADMIN else NORTH)
        creator = headers if ROLE_TABLE[role][0] == 201 else await token(R.OPERATOR)
        mission = await _create(client, creator)
        r = await _call(client, endpoint, headers, mission["id"])
        assert r.status_code == expected, r.text
        if expected == 403:
            assert r.json()["type"] == "urn:fleetd:problem:forbidden"
            denied = await pg_pool.fetchval(
                "SELECT count(*) FROM audit_log WHERE action = 'auth.denied' AND NOT success"
            )
            assert denied >= 1

    async def test_no_token_is_401(self, client: httpx.AsyncClient) -> None:
        """Without a token every mission endpoint answers 401."""
        mid = str(uuid.uuid4())
        for endpoint in ENDPOINTS:
            r = await _call(client, endpoint, {}, mid)
            assert r.status_code == 401, endpoint


class TestFacilityIsolation:
    async def test_a_token_of_one_facility_never_sees_another(
        self, client: httpx.AsyncClient, token: TokenFactory, pg_pool: asyncpg.Pool
    ) -> None:
        """A north operator's mission is invisible to a south operator: 404 and not listed."""
        north = await token(R.OPERATOR)
        south = await token(R.OPERATOR, SOUTH)
        m = await _create(client, north)
        assert (await client.get(f"/v1/missions/{m['id']}", headers=south)).status_code == 404
        r = await client.post(f"/v1/missions/{m['id']}/cancel", headers=south)
        assert r.status_code == 404
        r = await client.post(
            f"/v1/missions/{m['id']}/priority", json={"priority": "urgent"}, headers=south
        )
        assert r.status_code == 404
        listed = await client.get("/v1/missions", headers=south)
        assert listed.json()["items"] == []
        row = await pg_pool.fetchrow("SELECT status, priority, version FROM missions")
        assert row is not None
        assert dict(row) == {"status": "pending", "priority": "normal", "version": 1}
        assert await counts(pg_pool) == (1, 1)

    async def test_unknown_facility_answers_like_foreign(
        self, client: httpx.AsyncClient, token: TokenFactory, pg_pool: asyncpg.Pool
    ) -> None:
        """Issue 13, item 18: a scoped token cannot probe which facilities exist."""
        north = await token(R.OPERATOR)
        answers = []
        for ref in ("south", "atlantis"):
            r = await client.post("/v1/missions", json={**BODY, "facility": ref}, headers=north)
            doc = r.json()
            answers.append((r.status_code, doc["type"], doc["detail"].replace(ref, "REF")))
        assert answers[0] == answers[1]
        assert answers[0][0] == 403
        assert await counts(pg_pool) == (0, 0)

    async def test_admin_sees_every_facility(
        self, client: httpx.AsyncClient, token: TokenFactory
    ) -> None:
        """An unscoped admin lists the missions of all facilities."""
        await _create(client, await token(R.OPERATOR))
        await client.post(
            "/v1/missions",
            json={"pickup": {"place": "Lobby"}, "dropoff": {"place": "Ward A"}},
            headers=await token(R.OPERATOR, SOUTH),
        )
        listed = await client.get("/v1/missions", headers=await token(R.ADMIN, None))
        assert len(listed.json()["items"]) == 2


class TestOwnMissions:
    async def test_caregiver_sees_only_own_missions(
        self, client: httpx.AsyncClient, token: TokenFactory
    ) -> None:
        """Another caregiver's mission is not listed, not readable and not cancellable."""
        alice, bob = await token(R.CAREGIVER), await token(R.CAREGIVER)
        mine = await _create(client, alice)
        theirs = await _create(client, bob)
        listed = await client.get("/v1/missions", headers=alice)
        assert [m["id"] for m in listed.json()["items"]] == [mine["id"]]
        assert (await client.get(f"/v1/missions/{theirs['id']}", headers=alice)).status_code == 404
        r = await client.post(f"/v1/missions/{theirs['id']}/cancel", headers=alice)
        assert r.status_code == 404
        assert (await client.get(f"/v1/missions/{mine['id']}", headers=alice)).status_code == 200

    async def test_nurse_sees_all_but_cancels_only_own(
        self, client: httpx.AsyncClient, token: TokenFactory, pg_pool: asyncpg.Pool
    ) -> None:
        """A nurse reads every mission of the facility; cancelling another's is 403, audited."""
        nurse, caregiver = await token(R.NURSE), await token(R.CAREGIVER)
        theirs = await _create(client, caregiver)
        assert (await client.get(f"/v1/missions/{theirs['id']}", headers=nurse)).status_code == 200
        r = await client.post(f"/v1/missions/{theirs['id']}/cancel", headers=nurse)
        assert r.status_code == 403
        assert (
            await pg_pool.fetchval(
                "SELECT reason FROM audit_log WHERE action = 'mission.cancel' AND NOT success"
            )
            == "not_owner"
        )
        assert await counts(pg_pool) == (1, 1)

    async def test_operator_cancels_anyones_mission(
        self, client: httpx.AsyncClient, token: TokenFactory
    ) -> None:
        """Operators cancel any mission of their facility."""
        theirs = await _create(client, await token(R.CAREGIVER))
        r = await client.post(
            f"/v1/missions/{theirs['id']}/cancel", headers=await token(R.OPERATOR)
        )
        assert r.status_code == 200
        assert r.json()["status"] == "cancelled"


class TestList:
    async def test_pages_cover_everything_once_newest_first(
        self, client: httpx.AsyncClient, token: TokenFactory
    ) -> None:
        """Following next_cursor visits every mission exactly once, newest first."""
        headers = await token(R.OPERATOR)
        made = [(await _create(client, headers))["id"] for _ in range(5)]
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/v1/missions", params=params, headers=headers)).json()
            pages += 1
            seen.extend(m["id"] for m in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == 3
        assert seen == list(reversed(made))

    async def test_filters_by_status_and_priority(
        self, client: httpx.AsyncClient, token: TokenFactory
    ) -> None:
        """status and priority filters accept several values each."""
        headers = await token(R.OPERATOR)
        low = await _create(client, headers, priority="low")
        high = await _create(client, headers, priority="high")
        await client.post(f"/v1/missions/{low['id']}/cancel", headers=headers)

        async def ids(**params: Any) -> set[str]:
            r = await client.get("/v1/missions", params=params, headers=headers)
            assert r.status_code == 200, r.text
            return {m["id"] for m in r.json()["items"]}

        assert await ids(status="pending") == {high["id"]}
        assert await ids(status=["pending", "cancelled"]) == {low["id"], high["id"]}
        assert await ids(priority="low") == {low["id"]}
        assert await ids(vehicle_id=str(uuid.uuid4())) == set()

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"cursor": "garbage"}, "query.cursor"),
            ({"limit": 0}, "query.limit"),
            ({"limit": 1001}, "query.limit"),
            ({"status": "parked"}, "query.status[0]"),
            ({"vehicle_id": "x"}, "query.vehicle_id"),
        ],
    )
    async def test_bad_parameters_are_422(
        self, client: httpx.AsyncClient, token: TokenFactory, params: dict[str, Any], field: str
    ) -> None:
        """Bad list parameters are refused, naming them."""
        r = await client.get("/v1/missions", params=params, headers=await token(R.OPERATOR))
        assert r.status_code == 422
        assert field in [e["field"] for e in r.json()["errors"]]
