"""Migrations against the real PostgreSQL: create, apply, re-apply, race, refuse."""

from __future__ import annotations

import argparse
import asyncio

import asyncpg
import pytest

from dispatcher.cli import migrate as migrate_cli
from dispatcher.config import DatabaseSettings
from dispatcher.storage.db import create_pool, open_pool
from dispatcher.storage.errors import MigrationChecksumMismatch, StorageUnavailable
from dispatcher.storage.migrate import apply_migrations, load_migrations

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/fleetd"


def all_versions() -> list[str]:
    return [m.version for m in load_migrations()]


class TestApply:
    async def test_creates_database_and_applies_everything(self, fresh_dsn: str) -> None:
        """On a server without the database, it is created and every migration applied."""
        assert await apply_migrations(fresh_dsn) == all_versions()
        conn = await asyncpg.connect(fresh_dsn)
        try:
            rows = await conn.fetch("SELECT version, checksum FROM schema_migrations ORDER BY 1")
            tables = {
                r["tablename"]
                for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname='public'"
                )
            }
        finally:
            await conn.close()
        assert [(r["version"], r["checksum"]) for r in rows] == [
            (m.version, m.checksum) for m in load_migrations()
        ]
        assert {"facilities", "zones", "vehicles", "vehicle_positions", "vehicle_events"} <= tables

    async def test_reapply_is_a_no_op(self, pg_dsn: str) -> None:
        """A migrated database stays as it is and nothing is reported applied."""
        assert await apply_migrations(pg_dsn) == []
        assert await apply_migrations(pg_dsn) == []

    async def test_concurrent_runs_do_not_race(self, fresh_dsn: str) -> None:
        """Two daemons starting together: each migration is applied exactly once."""
        first, second = await asyncio.gather(
            apply_migrations(fresh_dsn), apply_migrations(fresh_dsn)
        )
        assert sorted(first + second) == all_versions()
        assert [] in (first, second)

    async def test_changed_checksum_is_refused(self, pg_dsn: str) -> None:
        """An applied migration whose file no longer matches its record stops everything."""
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(
                "UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE version = '0001'"
            )
        finally:
            await conn.close()
        with pytest.raises(MigrationChecksumMismatch) as info:
            await apply_migrations(pg_dsn)
        assert info.value.version == "0001"
        assert info.value.recorded == "0" * 64

    async def test_unreachable_server(self) -> None:
        """A closed port gives StorageUnavailable, from the OS error."""
        with pytest.raises(StorageUnavailable) as info:
            await apply_migrations(UNREACHABLE)
        assert isinstance(info.value.__cause__, OSError)


class TestPool:
    async def test_open_pool_from_settings(self, pg_dsn: str) -> None:
        """open_pool sizes the pool from DatabaseSettings and closes it on exit."""
        settings = DatabaseSettings(dsn=pg_dsn, pool_min=1, pool_max=2)
        async with open_pool(settings) as pool:
            assert await pool.fetchval("SELECT 1") == 1
            assert pool.get_max_size() == 2
        assert pool.is_closing()

    async def test_json_round_trips_as_python_objects(self, pg_pool: asyncpg.Pool) -> None:
        """json and jsonb come back as dicts and lists, and go in as them."""
        value = {"a": [1, 2.5, None], "b": {"c": "é"}}
        assert await pg_pool.fetchval("SELECT $1::jsonb", value) == value
        assert await pg_pool.fetchval("SELECT $1::json", [1, "x"]) == [1, "x"]

    async def test_unreachable_pool(self) -> None:
        """create_pool names the server and the cause when Postgres is away."""
        with pytest.raises(StorageUnavailable, match=r"127\.0\.0\.1:1"):
            await create_pool(UNREACHABLE, min_size=1)


class TestCli:
    def run(self, monkeypatch: pytest.MonkeyPatch, dsn: str) -> int:
        monkeypatch.setenv("FLEETD_DATABASE__DSN", dsn)
        monkeypatch.delenv("FLEETD_CONFIG", raising=False)
        # The CLI configures logging for the whole process; keep other tests' config intact.
        monkeypatch.setattr(migrate_cli, "configure_logging", lambda *a: None)
        parser = argparse.ArgumentParser()
        migrate_cli.register(parser.add_subparsers())
        args = parser.parse_args(["migrate"])
        code: int = args.func(args)
        return code

    def test_up_to_date(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], pg_dsn: str
    ) -> None:
        """A migrated database: exit 0, "up to date"."""
        assert self.run(monkeypatch, pg_dsn) == 0
        assert "up to date" in capsys.readouterr().out.splitlines()

    def test_applies_and_lists(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fresh_dsn: str
    ) -> None:
        """A fresh database: exit 0, one line per version applied."""
        assert self.run(monkeypatch, fresh_dsn) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [ln for ln in lines if ln.startswith("applied ")] == [
            f"applied {v}" for v in all_versions()
        ]

    def test_unreachable_exits_1_with_one_line(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Postgres away: exit 1 and a single line on stderr."""
        assert self.run(monkeypatch, UNREACHABLE) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "unavailable" in err
