"""Shared fixtures: real services, isolated per test.

- PostgreSQL: one database per test, cloned from a template migrated once per session.
- Redis: a key prefix per test; keys under it are deleted afterwards.
- MQTT: a topic namespace per test (VDA interface name and driver prefix).
- ``settings``: a :class:`~dispatcher.config.Settings` pointing at all of the above.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
import structlog

from dispatcher.config import Settings

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


async def _build_template() -> None:
    from dispatcher.storage.migrate import apply_migrations

    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(
            f"UPDATE pg_database SET datistemplate = false WHERE datname = '{TEMPLATE_DB}'"
        )
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    finally:
        await admin.close()
    await apply_migrations(_dsn_for(TEMPLATE_DB))
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f"ALTER DATABASE {TEMPLATE_DB} WITH IS_TEMPLATE true")
    finally:
        await admin.close()


async def _drop_template() -> None:
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(
            f"UPDATE pg_database SET datistemplate = false WHERE datname = '{TEMPLATE_DB}'"
        )
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")
    finally:
        await admin.close()


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
    name = f"fleetd_t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    finally:
        await admin.close()
    try:
        yield _dsn_for(name)
    finally:
        admin = await asyncpg.connect(ADMIN_DSN)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()


@pytest.fixture
async def pg_pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    from dispatcher.storage.db import create_pool

    pool = await create_pool(pg_dsn, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def settings(pg_dsn: str, redis_prefix: str, mqtt_namespace: str) -> Settings:
    """Settings wired to this test's database, Redis prefix, MQTT namespace and a free port."""
    return Settings(
        daemon={"instance_id": f"test-{mqtt_namespace}", "log_format": "console"},
        database={
            "dsn": pg_dsn,
            "position_flush_interval_s": 0.2,
            "telemetry_flush_interval_s": 0.1,
        },
        redis={"url": REDIS_URL, "key_prefix": redis_prefix, "geo_flush_interval_s": 0.05},
        mqtt={
            "vda_interface": mqtt_namespace,
            "driver_prefix": f"{mqtt_namespace}/driver/v1",
            "persistent_session": False,
        },
        fleet={
            "heartbeat_timeout_s": 1.5,
            "robot_heartbeat_timeout_s": 0,  # robots as drivers: offline tests stay short
            "liveness_check_interval_s": 0.05,
        },
        api={"port": free_port()},
    )
