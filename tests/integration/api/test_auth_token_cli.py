"""``fleetd token create | list | revoke`` against a real (fresh) database."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import structlog

from dispatcher.auth.roles import Role
from dispatcher.auth.tokens import authenticate
from dispatcher.cli import main
from dispatcher.config import facility_id
from tests.conftest import ADMIN_DSN


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """The CLI reconfigures structlog (to stderr); give the next test the old setup back."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
async def fresh_dsn() -> AsyncIterator[str]:
    """An empty database that does not exist yet: ``token create`` must set it up."""
    name = f"fleetd_t_{uuid.uuid4().hex[:16]}"
    base = ADMIN_DSN.rpartition("/")[0]
    yield f"{base}/{name}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


async def fleetd(*argv: str) -> int:
    """Run the CLI in a thread (it runs its own event loop)."""
    return await asyncio.to_thread(main, list(argv))


class TestTokenCli:
    async def test_create_on_a_fresh_machine_prints_secret_last(
        self,
        fresh_dsn: str,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.setenv("FLEETD_DATABASE__DSN", fresh_dsn)
        assert await fleetd("token", "create", "--role", "operator", "--name", "desk") == 0
        out = capsys.readouterr().out
        first = out.splitlines()[0]
        # Not "never": a token gets api.token_lifetime_days (90) unless told otherwise.
        expected = (datetime.now(UTC) + timedelta(days=90)).date().isoformat()
        assert f"role operator facility demo-campus expires {expected}" in first
        secret = out.split()[-1]
        assert secret.startswith("fltd_")
        pool = await asyncpg.create_pool(fresh_dsn, min_size=1, max_size=1)
        try:
            principal = await authenticate(pool, secret)
            assert principal is not None
            assert principal.role is Role.OPERATOR
            assert principal.facility_id == facility_id("demo-campus")
            assert str(principal.token_id) in first
        finally:
            await pool.close()

    async def test_admin_defaults_to_all_facilities_and_expiry_is_shown(
        self, pg_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("FLEETD_DATABASE__DSN", pg_dsn)
        assert await fleetd("token", "create", "--role", "admin", "--expires", "12h") == 0
        first = capsys.readouterr().out.splitlines()[0]
        assert "role admin facility all expires 20" in first

    async def test_never_and_a_configured_lifetime(
        self, pg_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``--expires never`` is an explicit choice; api.token_lifetime_days sets the default
        and 0 there restores "never" as the default."""
        monkeypatch.setenv("FLEETD_DATABASE__DSN", pg_dsn)
        assert await fleetd("token", "create", "--role", "admin", "--expires", "never") == 0
        assert "expires never" in capsys.readouterr().out.splitlines()[0]
        monkeypatch.setenv("FLEETD_API__TOKEN_LIFETIME_DAYS", "7")
        assert await fleetd("token", "create", "--role", "admin") == 0
        expected = (datetime.now(UTC) + timedelta(days=7)).date().isoformat()
        assert f"expires {expected}" in capsys.readouterr().out.splitlines()[0]
        monkeypatch.setenv("FLEETD_API__TOKEN_LIFETIME_DAYS", "0")
        assert await fleetd("token", "create", "--role", "admin") == 0
        assert "expires never" in capsys.readouterr().out.splitlines()[0]

    async def test_unknown_facility_is_exit_2(
        self, pg_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("FLEETD_DATABASE__DSN", pg_dsn)
        code = await fleetd("token", "create", "--role", "nurse", "--facility", "atlantis")
        assert code == 2
        err = capsys.readouterr().err
        assert "unknown facility 'atlantis'" in err
        assert "demo-campus" in err

    async def test_non_admin_cannot_be_unscoped(
        self, pg_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("FLEETD_DATABASE__DSN", pg_dsn)
        assert await fleetd("token", "create", "--role", "guest", "--facility", "all") == 2
        assert "only admin" in capsys.readouterr().err

    async def test_bad_expiry_is_exit_2(
        self, pg_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("FLEETD_DATABASE__DSN", pg_dsn)
        assert await fleetd("token", "create", "--role", "guest", "--expires", "soon") == 2
        assert "--expires" in capsys.readouterr().err

    async def test_unknown_role_is_a_usage_error(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as info:
            await fleetd("token", "create", "--role", "superuser")
        assert info.value.code == 2
        assert "invalid choice" in capsys.readouterr().err

    async def test_list_and_revoke(
        self, pg_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("FLEETD_DATABASE__DSN", pg_dsn)
        assert await fleetd("token", "create", "--role", "maintenance", "--name", "garage") == 0
        secret = capsys.readouterr().out.split()[-1]
        assert await fleetd("token", "list", "--json") == 0
        [listed] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert listed["name"] == "garage"
        assert listed["state"] == "active"
        assert secret not in json.dumps(listed)

        assert await fleetd("token", "revoke", listed["id"]) == 0
        assert "revoked" in capsys.readouterr().out
        assert await fleetd("token", "revoke", listed["id"]) == 1
        assert "no active token" in capsys.readouterr().err
        assert await fleetd("token", "list") == 0
        table = capsys.readouterr().out
        assert "revoked" in table
        assert "garage" in table
        # Issue 13, item 11: the command's create and revokes are audited (the second
        # revoke as refused), never with the secret.
        conn = await asyncpg.connect(pg_dsn)
        try:
            rows = await conn.fetch(
                "SELECT action, success, details::text AS details FROM audit_log "
                "WHERE resource_type = 'api_token' AND resource_id = $1 ORDER BY id",
                listed["id"],
            )
        finally:
            await conn.close()
        assert [(r["action"], r["success"]) for r in rows] == [
            ("token.create", True),
            ("token.revoke", True),
            ("token.revoke", False),
        ]
        assert all(secret not in r["details"] for r in rows)

    async def test_revoke_needs_a_uuid(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert await fleetd("token", "revoke", "nope") == 2
        assert "not a token id" in capsys.readouterr().err
