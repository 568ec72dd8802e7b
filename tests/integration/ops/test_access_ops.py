"""Refused requests are audited by the access operations, in real Postgres."""

from __future__ import annotations

import uuid

import asyncpg

from dispatcher.auth.roles import Permission, Role
from dispatcher.ops.access import AccessOps, Denial, StreamRefusal, StreamRefused
from tests.integration.ops.conftest import NORTH, SOUTH, api_caller, audit_rows


class TestDenied:
    async def test_denial_is_audited(self, pool: asyncpg.Pool) -> None:
        """A 403 names the route, the token, its role and the permissions it lacked."""
        caller = api_caller(Role.GUEST)
        denial = Denial(
            reason="forbidden",
            route="POST /v1/missions",
            method="POST",
            path="/v1/missions",
            required=frozenset({Permission.MISSION_CREATE}),
            source="192.0.2.7",
            caller=caller,
        )
        await AccessOps(pool).denied(denial)
        [row] = await audit_rows(pool)
        assert (row.action, row.resource_id, row.reason, row.actor_role) == (
            "auth.denied",
            "POST /v1/missions",
            "forbidden",
            "guest",
        )
        assert row.details["required"] == ["mission_create"]

    async def test_unknown_token_is_audited_by_its_id(self, pool: asyncpg.Pool) -> None:
        """A revoked token's refusal carries the token id but no role."""
        token_id = uuid.uuid4()
        denial = Denial(
            reason="revoked",
            route="GET /v1/missions",
            method="GET",
            path="/v1/missions",
            required=frozenset({Permission.MISSION_VIEW_ALL}),
            source=None,
            token_id=token_id,
        )
        await AccessOps(pool).denied(denial)
        [row] = await audit_rows(pool)
        assert (row.actor_token_id, row.actor_role, row.facility_id) == (token_id, None, None)


class TestEventScope:
    async def test_own_facility_is_allowed_unaudited(self, pool: asyncpg.Pool) -> None:
        """Naming the caller's own facility scopes the stream to it."""
        scope = await AccessOps(pool).event_scope(api_caller(Role.OPERATOR), "north")
        assert scope == NORTH.id
        assert await audit_rows(pool) == []

    async def test_other_facility_is_refused_and_audited(self, pool: asyncpg.Pool) -> None:
        """Naming another facility is refused and audited as events.stream."""
        scope = await AccessOps(pool).event_scope(api_caller(Role.OPERATOR), "south")
        assert scope == StreamRefused(StreamRefusal.OTHER_FACILITY, "south")
        [row] = await audit_rows(pool)
        assert (row.action, row.resource_id, row.reason) == (
            "events.stream",
            str(SOUTH.id),
            "other_facility",
        )
