"""Shared fixtures: real services, isolated per test.

- PostgreSQL: one database per test, cloned from a template migrated once per session.
- Redis: a key prefix per test; keys under it are deleted afterwards.
- MQTT: a topic namespace per test (VDA interface name and driver prefix).
- ``settings``: a :class:`~dispatcher.config.Settings` pointing at all of the above.

Helpers for tests that need more than one test's worth (a module-scoped database, a
daemon of their own): :func:`scratch_database`, :func:`db_pool`, :func:`daemon_settings`,
:func:`running_daemon`, :func:`api_client` and :func:`eventually`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
import structlog

from dispatcher.config import Settings
from sim.harness import free_port as free_port  # re-exported: many tests import it from here

if TYPE_CHECKING:
    from dispatcher.daemon import Daemon

ADMIN_DSN = os.environ.get("FLEETD_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("FLEETD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# One template per test run, so concurrent runs on one machine never drop each other's.
TEMPLATE_DB = f"fleetd_test_template_{os.getpid()}"
REPO = Path(__file__).resolve().parent.parent
VDA_SCHEMAS = REPO.parent / "shared" / "reference" / "vda5050-2.0"


def _dsn_for(db: str) -> str:
    base, _, _ = ADMIN_DSN.rpartition("/")
    return f"{base}/{db}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


async def admin_execute(sql: str) -> None:
    """Run ``sql`` on the maintenance database (CREATE/DROP DATABASE cannot run in the
    database they are about)."""
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


async def drop_database(name: str) -> None:
    """Drop ``name`` if it exists, even with connections still open (a test that failed
    half-way may leave some)."""
    await admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.asynccontextmanager
async def scratch_database(
    label: str | None = None,
    *,
    template: str | None = None,
    prepare: Callable[[str], Awaitable[Any]] | None = None,
) -> AsyncIterator[str]:
    """DSN of a new database of the caller's own, dropped on the way out.

    A clone of ``template`` when given (fast: the session's migrated template); otherwise
    empty, for ``prepare(dsn)`` to fill (``apply_migrations``, or only some migrations) or
    for a daemon under test to migrate. ``label`` goes into the name, so a database left
    behind by a killed run says which test made it.
    """
    name = (
        f"fleetd_t_{label}_{uuid.uuid4().hex[:10]}"
        if label
        else f"fleetd_t_{uuid.uuid4().hex[:16]}"
    )
    await admin_execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    try:
        if prepare is not None:
            await prepare(_dsn_for(name))
        yield _dsn_for(name)
    finally:
        await drop_database(name)


@contextlib.asynccontextmanager
async def db_pool(dsn: str, *, max_size: int = 4) -> AsyncIterator[asyncpg.Pool]:
    """A pool on ``dsn`` made as fleetd makes its own (codecs included), closed afterwards."""
    from dispatcher.storage.db import create_pool

    pool = await create_pool(dsn, min_size=1, max_size=max_size)
    try:
        yield pool
    finally:
        await pool.close()


async def _build_template() -> None:
    from dispatcher.storage.migrate import apply_migrations

    await admin_execute(
        f"UPDATE pg_database SET datistemplate = false WHERE datname = '{TEMPLATE_DB}'"
    )
    await drop_database(TEMPLATE_DB)
    await admin_execute(f"CREATE DATABASE {TEMPLATE_DB}")
    await apply_migrations(_dsn_for(TEMPLATE_DB))
    await admin_execute(f"ALTER DATABASE {TEMPLATE_DB} WITH IS_TEMPLATE true")


async def _drop_template() -> None:
    await admin_execute(
        f"UPDATE pg_database SET datistemplate = false WHERE datname = '{TEMPLATE_DB}'"
    )
    await drop_database(TEMPLATE_DB)


@pytest.fixture(autouse=True)
def _isolated_logging_config() -> Iterator[None]:
    """Undo whatever logging configuration a test made (the CLI's ``main`` configures it).

    Without this, a CLI test that sets the level to "warning" silences the info-level
    lines a later test captures, and the outcome depends on the order tests run in.
    """
    saved = structlog.get_config()
    yield
    structlog.reset_defaults()
    structlog.configure(**saved)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated database every test database is cloned from (built once per run)."""
    asyncio.run(_build_template())
    yield TEMPLATE_DB
    asyncio.run(_drop_template())


@pytest.fixture
async def pg_dsn(pg_template: str) -> AsyncIterator[str]:
    """DSN of a fresh, migrated database of this test's own; dropped afterwards."""
    async with scratch_database(template=pg_template) as dsn:
        yield dsn


@pytest.fixture
async def pg_pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    async with db_pool(pg_dsn) as pool:
        yield pool


@pytest.fixture
def redis_prefix() -> str:
    return f"test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def redis_client(redis_prefix: str) -> AsyncIterator[aioredis.Redis]:
    """A Redis client; every key under this test's prefix is deleted afterwards."""
    client = aioredis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        async for key in client.scan_iter(match=f"{redis_prefix}*", count=1000):
            await client.delete(key)
        await client.aclose()


@pytest.fixture
def mqtt_namespace() -> str:
    """A topic namespace of this test's own (used as the VDA 5050 interface name)."""
    return f"t{uuid.uuid4().hex[:10]}"


def daemon_settings(dsn: str, namespace: str, redis_prefix: str, **sections: Any) -> Settings:
    """Settings for a daemon on ``dsn``, Redis keys under ``redis_prefix`` and MQTT topics
    under ``namespace``, on a free API port, with short flush and liveness intervals so
    tests need not wait long. ``sections`` add keys to those sections (``daemon={...}``)
    or set others (``facilities=[...]``)."""
    base: dict[str, Any] = {
        "daemon": {
            "instance_id": f"test-{namespace}",
            "log_format": "console",
            # A spool of this daemon's own: never one shared with other tests or runs.
            "state_dir": tempfile.mkdtemp(prefix="fleetd-state-"),
        },
        "database": {
            "dsn": dsn,
            "position_flush_interval_s": 0.2,
            "telemetry_flush_interval_s": 0.1,
        },
        "redis": {"url": REDIS_URL, "key_prefix": redis_prefix, "geo_flush_interval_s": 0.05},
        "mqtt": {
            "vda_interface": namespace,
            "driver_prefix": f"{namespace}/driver/v1",
            "persistent_session": False,
        },
        "fleet": {
            "heartbeat_timeout_s": 1.5,
            "robot_heartbeat_timeout_s": 0,  # robots as drivers: offline tests stay short
            "liveness_check_interval_s": 0.05,
            # Tests bring up simulated vehicles ad hoc, as the demo does.
            "unknown_vehicles": "register",
            # Simulated drivers drive fast to keep tests short (tens of m/s, times the
            # time scale): their fixes are not judged implausible by speed here.
            "driver_max_speed_mps": 1000.0,
        },
        "api": {"port": free_port()},
    }
    for key, value in sections.items():
        base[key] = {**base[key], **value} if isinstance(base.get(key), dict) else value
    return Settings(**base)


@pytest.fixture
def settings(pg_dsn: str, redis_prefix: str, mqtt_namespace: str) -> Settings:
    """Settings wired to this test's database, Redis prefix, MQTT namespace and a free port."""
    return daemon_settings(pg_dsn, mqtt_namespace, redis_prefix)


@dataclass
class RunningDaemon:
    """A daemon :func:`running_daemon` started, and the task running it."""

    daemon: Daemon
    task: asyncio.Task[None]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.daemon.settings.api.port}"

    async def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop the daemon and wait for its run to end: raises what a failed shutdown
        raised (for tests of the shutdown itself)."""
        self.daemon.stop()
        await asyncio.wait_for(asyncio.shield(self.task), timeout_s)


@contextlib.asynccontextmanager
async def running_daemon(
    settings: Settings, *, ready_timeout_s: float = 30.0, **daemon_kwargs: Any
) -> AsyncIterator[RunningDaemon]:
    """A whole fleetd in this process, ready (API serving, broker session up).

    No signal handlers: pytest owns the process. On the way out the daemon is stopped and
    awaited; a failed shutdown fails the test, unless the test already failed, whose error
    is the one worth seeing. If it never gets ready, the run's own error is raised, if any.
    ``daemon_kwargs`` go to :class:`~dispatcher.daemon.Daemon` (``reload_settings=...``).
    """
    from dispatcher.daemon import Daemon

    daemon = Daemon(settings, install_signal_handlers=False, **daemon_kwargs)
    task = asyncio.create_task(daemon.run(), name="test.daemon")
    try:
        await asyncio.wait_for(asyncio.shield(daemon.wait_ready()), ready_timeout_s)
    except BaseException:
        daemon.stop()
        await asyncio.wait_for(task, 30)
        raise
    try:
        yield RunningDaemon(daemon, task)
    except BaseException:
        daemon.stop()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 30)
        raise
    daemon.stop()
    await asyncio.wait_for(task, 30)


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0) -> None:
    """Wait until ``check`` holds (it may be a coroutine function), polling every 50 ms;
    fail the test if it does not within ``timeout`` seconds. For what a daemon, a served
    app or a virtual vehicle does in its own time."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.05)


def api_client(
    base_url: str, secret: str | None = None, *, timeout: float = 5.0
) -> httpx.AsyncClient:
    """A client of a served API (a real port: streaming needs one), with a bearer token if
    ``secret`` is given."""
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, headers=headers)
