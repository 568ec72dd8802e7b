"""Releasing a pool connection: no reset query, but an open transaction is still ended."""

from __future__ import annotations

from dispatcher.storage.db import connect, create_pool


async def _last_query(dsn: str, pid: int) -> str:
    observer = await connect(dsn)
    try:
        query: str = await observer.fetchval(
            "SELECT query FROM pg_stat_activity WHERE pid = $1", pid
        )
        return query
    finally:
        await observer.close()


async def test_release_sends_no_reset_query(pg_dsn: str) -> None:
    """The backend's last statement is the caller's, not asyncpg's reset query."""
    pool = await create_pool(pg_dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
        assert await _last_query(pg_dsn, pid) == "SELECT pg_backend_pid()"
    finally:
        await pool.close()


async def test_a_transaction_left_open_is_rolled_back_on_release(pg_dsn: str) -> None:
    """What the reset query skipped is not needed for this: asyncpg still rolls back."""
    pool = await create_pool(pg_dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("CREATE TABLE left_open (x int)")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('left_open')") is None
    finally:
        await pool.close()


async def test_pool_connections_keep_no_session_settings(pg_dsn: str) -> None:
    """fleetd sets nothing session-wide on pool connections (SET LOCAL only)."""
    pool = await create_pool(pg_dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL statement_timeout = '1234ms'")
        timeout = await pool.fetchval("SHOW statement_timeout")
        assert timeout != "1234ms"
    finally:
        await pool.close()
