"""The asyncpg connection pool: JSON codecs, and a clear error when Postgres is away."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy
from pydantic import SecretStr

from dispatcher.config import DatabaseSettings
from dispatcher.storage.errors import StorageUnavailable

log = structlog.get_logger(__name__)

#: A connection, whether opened alone or acquired from a pool.
Conn: TypeAlias = asyncpg.Connection | PoolConnectionProxy

#: Errors that mean "cannot reach or enter the database", as opposed to a bad query.
CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, unreachable host, DNS failure
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,  # server starting up or shutting down
    asyncpg.InvalidCatalogNameError,  # database does not exist
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidPasswordError,
    asyncpg.TooManyConnectionsError,
)


def _dumps(value: Any) -> str:
    # Compact separators: jsonb normalises anyway, this only saves bytes on the wire.
    return json.dumps(value, separators=(",", ":"))


async def init_connection(conn: asyncpg.Connection) -> None:
    """Per-connection setup: json and jsonb travel as Python objects in both directions."""
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, schema="pg_catalog", encoder=_dumps, decoder=json.loads, format="text"
        )


def describe_error(exc: BaseException) -> str:
    """One line naming an error, for StorageUnavailable and logs."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def reveal(password: SecretStr | None) -> str | None:
    """The password as asyncpg takes it (``None``: from the DSN, PGPASSWORD or .pgpass)."""
    return password.get_secret_value() if password is not None else None


async def connect(
    dsn: str, *, connect_timeout: float = 10.0, password: SecretStr | None = None
) -> asyncpg.Connection:
    """One connection (codecs registered), for one-off work such as migrations.

    Raises :class:`StorageUnavailable` when the server cannot be reached or entered.
    """
    try:
        conn: asyncpg.Connection = await asyncpg.connect(
            dsn, timeout=connect_timeout, password=reveal(password)
        )
    except CONNECT_ERRORS as exc:
        raise StorageUnavailable(dsn, describe_error(exc)) from exc
    await init_connection(conn)
    return conn


async def keep_session(conn: asyncpg.Connection) -> None:
    """Pool release hook: no reset query (``reset=`` of ``asyncpg.create_pool``).

    asyncpg's default release runs ``SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`` on every release: one more round trip per pooled call, a fifth
    of a ``GET /v1/missions/{id}``. It only undoes session state, and pool connections
    carry none: fleetd takes transaction-scoped advisory locks only, declares no cursor
    ``WITH HOLD``, uses ``SET LOCAL`` rather than ``SET``, creates no temporary table and
    LISTENs on connections of its own (:class:`~dispatcher.storage.event_stream.EventHub`,
    migrations). Code that needs session state must use its own connection (:func:`connect`)
    or undo it before release. What matters is still done on release, before this hook
    runs: asyncpg rolls back a transaction left open and drops listeners added with
    ``add_listener``; a connection whose reset fails is closed.
    """


async def create_pool(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    command_timeout: float = 30.0,
    connect_timeout: float = 10.0,
    password: SecretStr | None = None,
) -> asyncpg.Pool:
    """Open a pool of ``min_size`` connections to ``dsn`` with JSON codecs registered.

    Raises :class:`StorageUnavailable` (from the asyncpg or OS error) when Postgres is
    unreachable, the database does not exist or the credentials are refused.
    """
    try:
        pool: asyncpg.Pool = await asyncpg.create_pool(
            dsn,
            password=reveal(password),
            min_size=min_size,
            max_size=max_size,
            command_timeout=command_timeout,
            timeout=connect_timeout,
            init=init_connection,
            reset=keep_session,
        )
    except CONNECT_ERRORS as exc:
        raise StorageUnavailable(dsn, describe_error(exc)) from exc
    return pool


@asynccontextmanager
async def open_pool(settings: DatabaseSettings) -> AsyncIterator[asyncpg.Pool]:
    """A pool sized from ``settings``, closed (gracefully, then forcibly) on exit."""
    pool = await create_pool(
        settings.dsn,
        password=settings.password,
        min_size=settings.pool_min,
        max_size=settings.pool_max,
        command_timeout=settings.command_timeout_s,
    )
    log.info("storage.pool_opened", min_size=settings.pool_min, max_size=settings.pool_max)
    try:
        yield pool
    finally:
        try:
            # A graceful close waits for checked-out connections; don't let it hang shutdown.
            await _close_pool(pool, settings.command_timeout_s)
        finally:
            log.info("storage.pool_closed")


async def _close_pool(pool: asyncpg.Pool, timeout_s: float) -> None:
    """Close ``pool`` gracefully within ``timeout_s``, then terminate what is left."""
    try:
        async with asyncio.timeout(timeout_s):
            await pool.close()
    except TimeoutError:
        log.warning("storage.pool_close_timeout", timeout_s=timeout_s)
        pool.terminate()
