"""Appends never wait for each other; the sealer chains committed rows in seal order.

Also: the database lets the sealing update set the chain columns and nothing else, one
sealer runs at a time, and a chain built by the pre-0005 writer still verifies.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
from prometheus_client import REGISTRY

from dispatcher.audit import log as audit_log
from dispatcher.audit.log import (
    AUDIT_SEAL_LOCK_KEY,
    AuditEntry,
    AuditSealer,
    append_audit,
    canonical_row,
    chain_hash,
    details_json,
    seal_all,
    seal_pending,
    verify_chain,
    write_audit,
)
from dispatcher.config import Settings
from dispatcher.storage.db import Conn, connect, create_pool
from dispatcher.storage.migrate import load_migrations
from tests.conftest import api_client, db_pool, running_daemon, scratch_database
from tests.integration.audit.test_chain import entry, tamper


async def unsealed(pool: asyncpg.Pool) -> int:
    n: int = await pool.fetchval("SELECT count(*) FROM audit_log WHERE seq IS NULL")
    return n


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - polling the database
            await asyncio.sleep(0.02)


async def chain_order(pool: asyncpg.Pool) -> list[tuple[int, int]]:
    rows = await pool.fetch("SELECT id, seq FROM audit_log WHERE seq IS NOT NULL ORDER BY seq")
    return [(r["id"], r["seq"]) for r in rows]


class TestAppendConcurrency:
    async def test_appends_in_open_transactions_do_not_wait(
        self, pg_dsn: str, pg_pool: asyncpg.Pool
    ) -> None:
        """20 transactions append while another one holding an append stays open: none waits.

        With a writer lock held to commit, the second append would wait for the first.
        """
        await write_audit(pg_pool, entry(0))
        await seal_pending(pg_pool)
        pool = await create_pool(pg_dsn, min_size=21, max_size=21)
        try:
            async with contextlib.AsyncExitStack() as stack:
                conns = [await stack.enter_async_context(pool.acquire()) for _ in range(21)]
                holder, others = conns[0], conns[1:]
                holding = holder.transaction()
                await holding.start()
                await append_audit(holder, entry(1))
                txs = [c.transaction() for c in others]
                for tx in txs:
                    await tx.start()
                async with asyncio.timeout(5):
                    # All 21 transactions open at once, each with an uncommitted audit row.
                    ids = await asyncio.gather(
                        *(append_audit(c, entry(10 + i)) for i, c in enumerate(others))
                    )
                    assert await seal_pending(pg_pool) == 0  # sees none, blocks on none
                    waiting = await pg_pool.fetchval(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                    assert waiting == 0
                    await asyncio.gather(*(tx.commit() for tx in txs))
                assert len(set(ids)) == 20
                assert await seal_pending(pg_pool) == 20
                await holding.commit()
        finally:
            await pool.close()
        assert await seal_pending(pg_pool) == 1
        report = await verify_chain(pg_pool)
        assert report.ok, report
        assert (report.rows_checked, report.unsealed) == (22, 0)

    async def test_lower_id_committing_late_is_sealed_later(self, pg_pool: asyncpg.Pool) -> None:
        async with pg_pool.acquire() as slow:
            tx = slow.transaction()
            await tx.start()
            low = await append_audit(slow, entry(0))
            high = await write_audit(pg_pool, entry(1))
            assert high > low
            assert await seal_pending(pg_pool) == 1
            await tx.commit()
        assert await seal_pending(pg_pool) == 1
        assert await chain_order(pg_pool) == [(high, 1), (low, 2)]
        report = await verify_chain(pg_pool)
        assert report.ok, report
        assert (report.rows_checked, report.last_id) == (2, low)

    async def test_rolled_back_appends_leave_no_hole_in_the_chain(
        self, pg_pool: asyncpg.Pool
    ) -> None:
        committed = []
        for i in range(6):
            if i % 2:
                with contextlib.suppress(RuntimeError):
                    async with pg_pool.acquire() as conn, conn.transaction():
                        await append_audit(conn, entry(i))
                        raise RuntimeError("mutation failed")
            else:
                committed.append(await write_audit(pg_pool, entry(i)))
            if i == 3:
                await seal_pending(pg_pool)
        await seal_pending(pg_pool)
        assert await chain_order(pg_pool) == list(zip(committed, [1, 2, 3], strict=True))
        assert committed[-1] - committed[0] > 2  # the ids have gaps, the chain has none
        report = await verify_chain(pg_pool)
        assert report.ok, report
        assert report.rows_checked == 3


class TestSealer:
    async def test_second_sealer_returns_at_once(self, pg_pool: asyncpg.Pool) -> None:
        for i in range(3):
            await write_audit(pg_pool, entry(i))
        async with pg_pool.acquire() as other, other.transaction():
            assert await other.fetchval("SELECT pg_try_advisory_xact_lock($1)", AUDIT_SEAL_LOCK_KEY)
            async with asyncio.timeout(2):
                assert await seal_pending(pg_pool) == 0
                assert await seal_all(pg_pool, lock_wait_s=0.1) == 0
            assert await unsealed(pg_pool) == 3
        assert await seal_pending(pg_pool) == 3

    async def test_concurrent_sealers_share_the_work(self, pg_pool: asyncpg.Pool) -> None:
        await asyncio.gather(*(write_audit(pg_pool, entry(i)) for i in range(30)))
        done = await asyncio.gather(seal_all(pg_pool, limit=4), seal_all(pg_pool, limit=4))
        assert sum(done) == 30
        report = await verify_chain(pg_pool)
        assert report.ok, report
        assert report.rows_checked == 30

    async def test_catches_up_in_full_batches_without_waiting(self, pg_pool: asyncpg.Pool) -> None:
        for i in range(7):
            await write_audit(pg_pool, entry(i))
        sealer = AuditSealer(pg_pool, interval_s=30, batch=2)
        task = asyncio.create_task(sealer.run())
        try:
            await eventually(lambda: _none_unsealed(pg_pool), timeout=3)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await write_audit(pg_pool, entry(8))
        assert await sealer.close() == 1  # the final seal at shutdown
        assert (await verify_chain(pg_pool)).rows_checked == 8

    async def test_failures_are_counted_and_retried(
        self, pg_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        real = audit_log.seal_pending
        calls = 0

        async def flaky(pool_or_conn: asyncpg.Pool | Conn, *, limit: int = 500) -> int:
            nonlocal calls
            calls += 1
            if calls <= 2:
                raise asyncpg.CannotConnectNowError("the database system is starting up")
            return await real(pool_or_conn, limit=limit)

        monkeypatch.setattr(audit_log, "seal_pending", flaky)
        before = REGISTRY.get_sample_value("fleetd_audit_seal_failures_total") or 0.0
        await write_audit(pg_pool, entry(0))
        task = asyncio.create_task(AuditSealer(pg_pool, interval_s=0.01, max_backoff_s=0.02).run())
        try:
            await eventually(lambda: _none_unsealed(pg_pool), timeout=3)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        after = REGISTRY.get_sample_value("fleetd_audit_seal_failures_total") or 0.0
        assert after - before == 2

    async def test_daemon_seals_while_running_and_at_shutdown(self, settings: Settings) -> None:
        async with (
            db_pool(settings.database.dsn, max_size=1) as pool,
            running_daemon(settings) as run,
        ):
            async with api_client(run.base_url) as client:
                assert (await client.get("/v1/vehicles")).status_code == 401  # audited
                await eventually(lambda: _sealed_rows(pool, 1), timeout=3)
                assert (await client.get("/v1/vehicles")).status_code == 401
            await run.shutdown(15)
            assert await unsealed(pool) == 0
            report = await verify_chain(pool)
            assert report.ok, report
            assert report.rows_checked == 2


async def _none_unsealed(pool: asyncpg.Pool) -> bool:
    return await unsealed(pool) == 0


async def _sealed_rows(pool: asyncpg.Pool, n: int) -> bool:
    sealed: int = await pool.fetchval("SELECT count(*) FROM audit_log WHERE seq IS NOT NULL")
    return sealed >= n


class TestGuard:
    """The trigger: only the one-time sealing update, and it cannot carry content changes."""

    @pytest.mark.parametrize(
        "change",
        [
            "success = false",
            "details = '{\"n\": 999}'::jsonb",
            "at = at - interval '1 hour'",
            "hash_format = 1",
        ],
    )
    async def test_sealing_update_cannot_change_content(
        self, pg_pool: asyncpg.Pool, change: str
    ) -> None:
        row_id = await write_audit(pg_pool, entry(0))
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await pg_pool.execute(
                f"UPDATE audit_log SET seq = 1, hash = sha256('x'), {change} WHERE id = $1",
                row_id,
            )
        assert await unsealed(pg_pool) == 1

    @pytest.mark.parametrize(
        "statement",
        [
            "UPDATE audit_log SET hash = sha256(hash)",  # re-seal
            "UPDATE audit_log SET seq = seq + 10, hash = sha256(hash)",
            "UPDATE audit_log SET seq = NULL, prev_hash = NULL, hash = NULL",  # unseal
        ],
    )
    async def test_sealed_rows_stay_as_sealed(self, pg_pool: asyncpg.Pool, statement: str) -> None:
        await write_audit(pg_pool, entry(0))
        await seal_pending(pg_pool)
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await pg_pool.execute(statement)
        assert (await verify_chain(pg_pool)).ok

    async def test_half_a_seal_is_refused(self, pg_pool: asyncpg.Pool) -> None:
        """Setting a chain position without a hash is not a sealing update."""
        row_id = await write_audit(pg_pool, entry(0))
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await pg_pool.execute("UPDATE audit_log SET seq = 1 WHERE id = $1", row_id)

    async def test_rows_arrive_unsealed(self, pg_pool: asyncpg.Pool) -> None:
        """An insert cannot pass a row off as sealed: its chain columns are cleared."""
        await pg_pool.execute(
            "INSERT INTO audit_log (action, resource_type, success, seq, prev_hash, hash,"
            " hash_format) VALUES ('a', 'r', true, 1, sha256('p'), sha256('x'), 1)"
        )
        row = await pg_pool.fetchrow("SELECT seq, prev_hash, hash, hash_format FROM audit_log")
        assert row is not None
        assert dict(row) == {"seq": None, "prev_hash": None, "hash": None, "hash_format": 2}

    async def test_a_hand_sealed_row_with_a_wrong_hash_is_reported(
        self, pg_pool: asyncpg.Pool
    ) -> None:
        """The database allows the sealing shape; verify checks the hash itself."""
        await write_audit(pg_pool, entry(0))
        await seal_pending(pg_pool)
        forged = await write_audit(pg_pool, entry(1))
        await pg_pool.execute(
            "UPDATE audit_log SET seq = 2, prev_hash = (SELECT hash FROM audit_log WHERE seq = 1),"
            " hash = sha256('forged') WHERE id = $1",
            forged,
        )
        report = await verify_chain(pg_pool)
        assert not report.ok
        assert report.first_bad_id == forged


# A chain written by the pre-0005 code ----------------------------------------------------


async def _migrate_to_0004(dsn: str) -> None:
    conn = await connect(dsn)
    try:
        for mig in load_migrations():
            if mig.version < "0005":
                await conn.execute(mig.sql)
    finally:
        await conn.close()


@pytest.fixture
async def pre_0005_dsn() -> AsyncIterator[str]:
    """A new database with migrations 0001-0004 only."""
    async with scratch_database("pre0005", prepare=_migrate_to_0004) as dsn:
        yield dsn


async def legacy_append(conn: Conn, e: AuditEntry) -> int:
    """What append_audit did before 0005 (minus its lock: the test writes one at a time)."""
    head = await conn.fetchrow(
        """
        SELECT (SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1) AS prev_hash,
               nextval(pg_get_serial_sequence('audit_log', 'id')) AS id,
               clock_timestamp() AS at, $1::text::jsonb::text AS details_text
        """,
        details_json(e.details),
    )
    assert head is not None
    digest = chain_hash(
        head["prev_hash"],
        canonical_row(
            id=head["id"],
            at=head["at"],
            facility_id=e.facility_id,
            actor_token_id=e.actor_token_id,
            actor_role=e.actor_role,
            action=e.action,
            resource_type=e.resource_type,
            resource_id=e.resource_id,
            details_text=head["details_text"],
            source=e.source,
            success=e.success,
            reason=e.reason,
        ),
    )
    await conn.execute(
        """
        INSERT INTO audit_log (id, at, facility_id, actor_token_id, actor_role, action,
                               resource_type, resource_id, details, source, success, reason,
                               prev_hash, hash)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10, $11, $12, $13, $14)
        """,
        head["id"],
        head["at"],
        e.facility_id,
        e.actor_token_id,
        e.actor_role,
        e.action,
        e.resource_type,
        e.resource_id,
        head["details_text"],
        e.source,
        e.success,
        e.reason,
        head["prev_hash"],
        digest,
    )
    row_id: int = head["id"]
    return row_id


async def test_chain_from_before_0005_still_verifies(pre_0005_dsn: str) -> None:
    [m0005] = [m for m in load_migrations() if m.version == "0005"]
    conn = await connect(pre_0005_dsn)
    try:
        old_ids = [await legacy_append(conn, entry(i)) for i in range(4)]
        old_hashes = await conn.fetch("SELECT id, hash FROM audit_log ORDER BY id")
        await conn.execute(m0005.sql)
    finally:
        await conn.close()
    async with db_pool(pre_0005_dsn, max_size=2) as pool:
        # Old rows: positions in id order, hashes untouched, checked with the old form.
        rows = await pool.fetch("SELECT id, seq, hash, hash_format FROM audit_log ORDER BY id")
        assert [(r["id"], r["seq"], r["hash_format"]) for r in rows] == [
            (i, n, 1) for n, i in enumerate(old_ids, 1)
        ]
        assert [r["hash"] for r in rows] == [r["hash"] for r in old_hashes]
        report = await verify_chain(pool)
        assert report.ok, report
        assert report.rows_checked == 4

        # New rows continue the chain in the new form.
        new_ids = [await write_audit(pool, entry(10 + i)) for i in range(3)]
        assert await seal_pending(pool) == 3
        assert await chain_order(pool) == list(zip(old_ids + new_ids, range(1, 8), strict=True))
        report = await verify_chain(pool, batch=3)
        assert report.ok, report
        assert (report.rows_checked, report.last_id) == (7, new_ids[-1])

        # A fleetd from before 0005 still running during the upgrade writes unsealed rows.
        async with pool.acquire() as held:
            straggler = await legacy_append(held, entry(20))
        assert await seal_pending(pool) == 1
        new_ids.append(straggler)
        report = await verify_chain(pool)
        assert report.ok, report
        assert (report.rows_checked, report.last_id) == (8, straggler)

        # A new row passed off as an old one (its hash re-read in the old form) is caught ...
        await tamper(pool, "UPDATE audit_log SET hash_format = 1 WHERE id = $1", new_ids[1])
        report = await verify_chain(pool)
        assert report.first_bad_id == new_ids[1]
        # ... and so is tampering with an old row, which re-sealing could have laundered.
        await tamper(pool, "UPDATE audit_log SET success = NOT success WHERE id = $1", old_ids[1])
        report = await verify_chain(pool)
        assert not report.ok
        assert report.first_bad_id == old_ids[1]
        assert report.reason is not None
        assert "altered" in report.reason
