"""Versioned SQL migrations: ``migrations/NNNN_name.sql``, applied in order, once each.

Each file runs in a transaction of its own and is recorded in ``schema_migrations`` with
a SHA-256 of its text. Applied files are history: if one changes, we refuse to run rather
than guess. A session-level ``pg_advisory_lock`` serialises daemons starting together, so
the second one waits and then finds nothing to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg
import structlog
from pydantic import SecretStr

from dispatcher.storage.db import CONNECT_ERRORS, connect, describe_error, reveal
from dispatcher.storage.errors import (
    MigrationChecksumMismatch,
    MigrationError,
    MigrationFailed,
    StorageUnavailable,
)

log = structlog.get_logger(__name__)

#: Package holding the ``migrations`` directory (package data, see pyproject.toml).
MIGRATIONS_PACKAGE = "dispatcher.storage"
MIGRATIONS_DIR = "migrations"

#: Advisory-lock key for migrations: arbitrary but fixed, and shared by every fleetd.
#: Advisory locks are per database, so this only serialises runners on the same schema.
MIGRATION_LOCK_KEY = 0x666C656574640001  # "fleetd" + 1, fits a signed bigint

_FILENAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE schema_migrations IS
    'Migrations applied by dispatcher.storage.migrate; checksum is SHA-256 of the file.';
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: str  # "0001"
    name: str  # "core"
    sql: str
    checksum: str  # hex SHA-256 of the file's bytes

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"


def load_migrations() -> list[Migration]:
    """Every ``NNNN_name.sql`` in the package's migrations directory, in version order.

    Other files are ignored. Two files with one version are an error.
    """
    folder = resources.files(MIGRATIONS_PACKAGE).joinpath(MIGRATIONS_DIR)
    found: dict[str, Migration] = {}
    for entry in folder.iterdir():
        match = _FILENAME.match(entry.name)
        if match is None or not entry.is_file():
            continue
        data = entry.read_bytes()
        mig = Migration(
            version=match["version"],
            name=match["name"],
            sql=data.decode("utf-8"),
            checksum=hashlib.sha256(data).hexdigest(),
        )
        if mig.version in found:
            raise MigrationError(
                f"two migrations share version {mig.version}: "
                f"{found[mig.version].label}.sql and {mig.label}.sql"
            )
        found[mig.version] = mig
    return [found[v] for v in sorted(found)]


def admin_dsn(dsn: str) -> tuple[str, str] | None:
    """``(dsn of the 'postgres' database on the same server, target database name)``.

    None when the DSN names no database in its path (libpq then defaults it from the
    user or the environment, and we do not guess which).
    """
    parts = urlsplit(dsn)
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        return None
    return urlunsplit(parts._replace(path="/postgres")), dbname


async def ensure_database(dsn: str, *, password: SecretStr | None = None) -> bool:
    """Create the DSN's database if it does not exist. Returns True if it was created.

    Connects to the ``postgres`` database of the same server to do so. Raises
    :class:`StorageUnavailable` when the server cannot be reached.
    """
    try:
        conn = await asyncpg.connect(dsn, timeout=10.0, password=reveal(password))
    except asyncpg.InvalidCatalogNameError:
        pass  # the one case we handle: the server is there, the database is not
    except CONNECT_ERRORS as exc:
        raise StorageUnavailable(dsn, describe_error(exc)) from exc
    else:
        await conn.close()
        return False

    target = admin_dsn(dsn)
    if target is None:
        raise StorageUnavailable(dsn, "database does not exist and the DSN names none to create")
    admin, dbname = target
    conn = await connect(admin, password=password)
    try:
        # CREATE DATABASE takes no parameters; quote the identifier ourselves.
        quoted = '"' + dbname.replace('"', '""') + '"'
        await conn.execute(f"CREATE DATABASE {quoted}")
    except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
        # Another starting daemon got there first (a simultaneous CREATE DATABASE surfaces
        # as a unique violation on pg_database rather than as "already exists").
        return False
    finally:
        await conn.close()
    log.info("storage.database_created", database=dbname)
    return True


async def apply_migrations(dsn: str, *, password: SecretStr | None = None) -> list[str]:
    """Bring the database at ``dsn`` up to date; return the versions applied, in order.

    ``dsn`` (and ``password``) name the schema owner: the login that may create tables
    and the runtime role's grants (``database.migration_dsn``).

    Creates the database first if it is missing. Re-running is a no-op returning ``[]``.
    Raises :class:`StorageUnavailable` if Postgres cannot be reached,
    :class:`MigrationChecksumMismatch` if an applied file was edited, and
    :class:`MigrationFailed` if a file's SQL fails (that file is rolled back; earlier
    ones stay applied).
    """
    migrations = load_migrations()
    await ensure_database(dsn, password=password)
    conn = await connect(dsn, password=password)
    try:
        # Migrations may build indexes on big tables: no statement timeout here.
        await conn.execute("SET statement_timeout = 0")
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            return await _apply_locked(conn, migrations)
        finally:
            # A broken connection has released the lock already; don't mask the real error.
            with contextlib.suppress(*CONNECT_ERRORS):
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    finally:
        await conn.close()


async def _apply_locked(conn: asyncpg.Connection, migrations: list[Migration]) -> list[str]:
    await conn.execute(_CREATE_TABLE)
    rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
    applied = {r["version"]: r for r in rows}

    # Check every applied file before changing anything, so a refusal leaves no half-state.
    for mig in migrations:
        rec = applied.get(mig.version)
        if rec is not None and rec["checksum"] != mig.checksum:
            raise MigrationChecksumMismatch(mig.version, mig.name, rec["checksum"], mig.checksum)
    known = {m.version for m in migrations}
    unknown = sorted(v for v in applied if v not in known)
    if unknown:
        # A newer fleetd migrated this database; running older code on it is allowed but noted.
        log.warning("storage.migrations_unknown", versions=unknown)

    done: list[str] = []
    for mig in migrations:
        if mig.version in applied:
            continue
        try:
            async with conn.transaction():
                # No arguments: the simple query protocol runs the whole multi-statement file.
                await conn.execute(mig.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    mig.version,
                    mig.name,
                    mig.checksum,
                )
        except asyncpg.PostgresError as exc:
            raise MigrationFailed(mig.version, mig.name, describe_error(exc)) from exc
        log.info("storage.migration_applied", version=mig.version, name=mig.name)
        done.append(mig.version)
    return done
