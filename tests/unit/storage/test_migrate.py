"""Migration discovery and DSN handling, without a database."""

from __future__ import annotations

import hashlib
import re
from importlib import resources

import pytest

from dispatcher.storage.errors import (
    MigrationChecksumMismatch,
    StorageUnavailable,
    redact_dsn,
)
from dispatcher.storage.migrate import admin_dsn, load_migrations


class TestLoadMigrations:
    def test_core_is_first_and_versions_ascend(self) -> None:
        """0001_core comes first; versions are unique and in order."""
        migs = load_migrations()
        assert migs[0].version == "0001"
        assert migs[0].name == "core"
        versions = [m.version for m in migs]
        assert versions == sorted(set(versions))

    def test_every_sql_file_in_the_package_is_picked_up(self) -> None:
        """Files named NNNN_name.sql are all migrations (package data, not a path)."""
        folder = resources.files("dispatcher.storage").joinpath("migrations")
        files = sorted(
            e.name for e in folder.iterdir() if re.match(r"^\d{4}_[a-z0-9_]+\.sql$", e.name)
        )
        assert [f"{m.label}.sql" for m in load_migrations()] == files

    def test_checksum_is_sha256_of_the_file(self) -> None:
        """The recorded checksum is the SHA-256 of the file's bytes."""
        core = load_migrations()[0]
        data = resources.files("dispatcher.storage").joinpath("migrations/0001_core.sql")
        assert core.checksum == hashlib.sha256(data.read_bytes()).hexdigest()


class TestAdminDsn:
    @pytest.mark.parametrize(
        ("dsn", "admin", "db"),
        [
            (
                "postgresql://postgres@127.0.0.1:5432/fleetd",
                "postgresql://postgres@127.0.0.1:5432/postgres",
                "fleetd",
            ),
            (
                "postgres://u:p@db.example:6543/fleet%20d?sslmode=require",
                "postgres://u:p@db.example:6543/postgres?sslmode=require",
                "fleet d",
            ),
        ],
    )
    def test_same_server_postgres_database(self, dsn: str, admin: str, db: str) -> None:
        """The admin DSN keeps host, credentials and options, and names ``postgres``."""
        assert admin_dsn(dsn) == (admin, db)

    def test_no_database_in_dsn(self) -> None:
        """Without a database in the path there is nothing to create."""
        assert admin_dsn("postgresql://postgres@127.0.0.1:5432") is None


class TestErrors:
    def test_password_is_redacted(self) -> None:
        """Passwords never reach messages or logs."""
        err = StorageUnavailable("postgresql://fleet:s3cret@db:5432/fleetd", "refused")
        assert "s3cret" not in str(err)
        assert err.dsn == "postgresql://fleet:***@db:5432/fleetd"
        assert err.reason == "refused"

    def test_dsn_without_password_unchanged(self) -> None:
        """Nothing to hide, nothing changed."""
        dsn = "postgresql://postgres@127.0.0.1:5432/fleetd"
        assert redact_dsn(dsn) == dsn

    @pytest.mark.parametrize(
        ("dsn", "redacted"),
        [
            (
                "postgresql://fleet@db/fleetd?password=s3cret&sslmode=require",
                "postgresql://fleet@db/fleetd?password=***&sslmode=require",
            ),
            (
                "postgresql://fleet:s3cret@db/fleetd?sslpassword=s3cret",
                "postgresql://fleet:***@db/fleetd?sslpassword=***",
            ),
            ("postgresql://db/fleetd?PASSWORD=s3cret", "postgresql://db/fleetd?PASSWORD=***"),
        ],
    )
    def test_password_in_query_is_redacted(self, dsn: str, redacted: str) -> None:
        """libpq also takes a password (and a key's passphrase) as a query parameter."""
        assert redact_dsn(dsn) == redacted

    def test_checksum_mismatch_carries_data(self) -> None:
        """The version and both checksums are attributes, not only text."""
        err = MigrationChecksumMismatch("0001", "core", "a" * 64, "b" * 64)
        assert (err.version, err.recorded, err.current) == ("0001", "a" * 64, "b" * 64)
        assert "0001_core" in str(err)
