"""Token operations write their audit rows (success and refusal) in real Postgres."""

from __future__ import annotations

import uuid

import asyncpg

from dispatcher.auth.roles import Role
from dispatcher.auth.tokens import lookup
from dispatcher.ops.caller import Caller
from dispatcher.ops.tokens import TokenCreated, TokenOps, TokenRefusal, TokenRefused, TokenSpec
from tests.integration.ops.conftest import NORTH, api_caller, audit_rows

OPERATOR = Caller.operator("alice")


def _spec(role: Role = Role.NURSE, facility: uuid.UUID | None = NORTH.id) -> TokenSpec:
    return TokenSpec(role=role, facility_id=facility, name="ward-a tablet", expires_at=None)


class TestCreate:
    async def test_created_token_is_audited_without_its_secret(self, pool: asyncpg.Pool) -> None:
        """token.create names the operator and the token, never the secret."""
        created = await TokenOps(pool).create(OPERATOR, _spec())
        assert isinstance(created, TokenCreated)
        assert (await lookup(pool, created.secret)).principal is not None
        [row] = await audit_rows(pool)
        assert (row.action, row.resource_type, row.resource_id, row.success) == (
            "token.create",
            "api_token",
            str(created.token_id),
            True,
        )
        assert (row.source, row.actor_token_id, row.facility_id) == ("cli:alice", None, NORTH.id)
        assert row.details["new"]["role"] == "nurse"
        assert created.secret not in str(row.details)
        assert created.secret not in repr(created)

    async def test_unscoped_non_admin_is_refused_and_audited(self, pool: asyncpg.Pool) -> None:
        """Only admin tokens may cover every facility; the refusal is audited."""
        outcome = await TokenOps(pool).create(OPERATOR, _spec(facility=None))
        assert isinstance(outcome, TokenRefused)
        assert outcome.reason is TokenRefusal.INVALID
        assert await pool.fetchval("SELECT count(*) FROM api_tokens") == 0
        [row] = await audit_rows(pool)
        assert (row.action, row.success, row.reason) == ("token.create", False, "invalid")

    async def test_non_admin_api_caller_is_refused(self, pool: asyncpg.Pool) -> None:
        """An API token other than admin may not make tokens."""
        outcome = await TokenOps(pool).create(api_caller(Role.OPERATOR), _spec())
        assert isinstance(outcome, TokenRefused)
        assert outcome.reason is TokenRefusal.FORBIDDEN
        assert (await audit_rows(pool))[0].reason == "forbidden"


class TestRevoke:
    async def test_revoked_token_is_audited_once(self, pool: asyncpg.Pool) -> None:
        """Revoking is audited; revoking again is refused as not active, audited too."""
        ops = TokenOps(pool)
        created = await ops.create(OPERATOR, _spec())
        assert isinstance(created, TokenCreated)
        assert await ops.revoke(OPERATOR, created.token_id) == created.token_id
        again = await ops.revoke(OPERATOR, created.token_id)
        assert isinstance(again, TokenRefused)
        assert again.reason is TokenRefusal.NOT_ACTIVE
        rows = await audit_rows(pool)
        assert [(r.action, r.success, r.reason) for r in rows] == [
            ("token.create", True, None),
            ("token.revoke", True, None),
            ("token.revoke", False, "not_active"),
        ]
        assert (await lookup(pool, created.secret)).principal is None
