"""Database roles (migration 0006): the runtime login cannot tamper with the audit log,
and a whole daemon runs with it (migrations under the owner's login)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from dispatcher.audit.checkpoints import parse_checkpoints
from dispatcher.audit.log import AuditEntry, seal_pending, write_audit
from dispatcher.config import AuditSettings, Settings
from tests.conftest import admin_execute, eventually, running_daemon

#: A login of the test server, member of fleetd_runtime. Server-wide and shared by every
#: test run on this machine, so it is created idempotently and never dropped.
RUNTIME_LOGIN = "fleetd_test_runtime"


def runtime_dsn(owner_dsn: str) -> str:
    """The same database as ``owner_dsn``, as the runtime login."""
    rest = owner_dsn.split("@", 1)[1]
    return f"postgresql://{RUNTIME_LOGIN}@{rest}"


@pytest.fixture
async def runtime_pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    await admin_execute(
        f"""DO $$ BEGIN
            CREATE ROLE {RUNTIME_LOGIN} LOGIN IN ROLE fleetd_runtime;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"""
    )
    pool = await asyncpg.create_pool(runtime_dsn(pg_dsn), min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


def _entry(i: int) -> AuditEntry:
    return AuditEntry(
        action="vehicle.pause", resource_type="vehicle", resource_id=str(i), success=True
    )


#: What someone holding the daemon's login might try, and each must be refused.
TAMPERING = [
    "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
    "ALTER TABLE audit_log DISABLE TRIGGER USER",
    "DROP TRIGGER audit_log_append_only ON audit_log",
    "ALTER TABLE audit_log ADD COLUMN note text",
    "UPDATE audit_log SET action = 'nothing.happened'",
    "UPDATE audit_log SET success = false",
    "DELETE FROM audit_log",
    "TRUNCATE audit_log",
    "DROP TABLE audit_log",
    "DELETE FROM schema_migrations",
]


class TestRuntimeRole:
    @pytest.mark.parametrize("sql", TAMPERING)
    async def test_tampering_is_refused(self, runtime_pool: asyncpg.Pool, sql: str) -> None:
        """The runtime login lacks the privilege for each, whatever the trigger says."""
        await write_audit(runtime_pool, _entry(1))
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await runtime_pool.execute(sql)

    async def test_it_appends_and_seals_but_cannot_reseal(self, runtime_pool: asyncpg.Pool) -> None:
        """INSERT and the sealing UPDATE work; changing a sealed row's hash does not
        (the column right is there for sealing, the guard trigger refuses the rest)."""
        for i in range(3):
            await write_audit(runtime_pool, _entry(i))
        assert await seal_pending(runtime_pool) == 3
        with pytest.raises(asyncpg.PostgresError):
            await runtime_pool.execute("UPDATE audit_log SET hash = sha256('x') WHERE seq = 2")
        assert await runtime_pool.fetchval("SELECT count(*) FROM audit_log") == 3


class TestDaemonAsRuntime:
    async def test_daemon_runs_with_the_runtime_login(
        self, settings: Settings, runtime_pool: asyncpg.Pool, tmp_path: Path
    ) -> None:
        """database.dsn the runtime login, database.migration_dsn the owner: the daemon
        migrates, serves, audits, seals and writes checkpoints of the chain's head."""
        owner = settings.database.dsn
        database = settings.database.model_copy(
            update={"dsn": runtime_dsn(owner), "migration_dsn": owner}
        )
        checkpoints = tmp_path / "checkpoints.jsonl"
        audit = AuditSettings(checkpoint_interval_s=0.1, checkpoint_file=checkpoints)
        split = settings.model_copy(update={"database": database, "audit": audit})
        async with running_daemon(split) as running:
            async with httpx.AsyncClient(base_url=running.base_url) as client:
                assert (await client.get("/readyz")).status_code == 200
                assert (await client.get("/v1/vehicles")).status_code == 401

            async def sealed() -> bool:
                return bool(
                    await runtime_pool.fetchval("SELECT count(*) FROM audit_log WHERE seq > 0")
                )

            await eventually(sealed)
            await eventually(lambda: checkpoints.exists() and checkpoints.stat().st_size > 0)
        [point, *_] = parse_checkpoints(checkpoints.read_text().splitlines())
        head = await runtime_pool.fetchval("SELECT hash FROM audit_log WHERE seq = $1", point.seq)
        assert bytes(head).hex() == point.hash_hex
