"""The audit log is append-only and hash-chained; verify finds tampering and deletion."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

import asyncpg
import pytest

from dispatcher.audit.log import (
    AuditEntry,
    AuditError,
    append_audit,
    canonical_row,
    chain_hash,
    verify_chain,
    write_audit,
)


def entry(i: int, **changes: object) -> AuditEntry:
    base: dict[str, object] = {
        "action": "mission.create",
        "resource_type": "mission",
        "resource_id": f"m-{i}",
        "success": True,
        "facility_id": uuid.uuid4(),
        "actor_token_id": uuid.uuid4(),
        "actor_role": "operator",
        "source": "198.51.100.1",
        "details": {"n": i, "new": {"priority": "high", "weight": 1.5e16, "tiny": 1e-7}},
    }
    base.update(changes)
    return AuditEntry(**base)  # type: ignore[arg-type]


async def tamper(pool: asyncpg.Pool, sql: str, *args: object) -> None:
    """Change audit_log as a superuser would, with the append-only trigger out of the way."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        await conn.execute(sql, *args)
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")


class TestCanonical:
    def test_hash_covers_every_field(self) -> None:
        fields = {
            "id": 1,
            "at": datetime(2030, 1, 1, tzinfo=UTC),
            "facility_id": None,
            "actor_token_id": None,
            "actor_role": None,
            "action": "a",
            "resource_type": "r",
            "resource_id": None,
            "details_text": "{}",
            "source": None,
            "success": True,
            "reason": None,
        }
        base = chain_hash(None, canonical_row(**fields))  # type: ignore[arg-type]
        for key, other in [("id", 2), ("action", "b"), ("success", False), ("reason", "x")]:
            changed = chain_hash(None, canonical_row(**{**fields, key: other}))  # type: ignore[arg-type]
            assert changed != base, key
        assert chain_hash(b"\x00" * 32, canonical_row(**fields)) != base  # type: ignore[arg-type]


class TestAppend:
    async def test_rows_chain_to_their_predecessor(self, pg_pool: asyncpg.Pool) -> None:
        ids = [await write_audit(pg_pool, entry(i)) for i in range(3)]
        rows = await pg_pool.fetch("SELECT id, prev_hash, hash FROM audit_log ORDER BY id")
        assert [r["id"] for r in rows] == ids
        assert rows[0]["prev_hash"] is None
        assert rows[1]["prev_hash"] == rows[0]["hash"]
        assert rows[2]["prev_hash"] == rows[1]["hash"]

    async def test_details_keep_their_values(self, pg_pool: asyncpg.Pool) -> None:
        class Colour(StrEnum):
            RED = "red"

        mid = uuid.uuid4()
        await write_audit(
            pg_pool,
            entry(1, details={"mission": mid, "colour": Colour.RED, "cost": Decimal("1.10")}),
        )
        details = await pg_pool.fetchval("SELECT details FROM audit_log")
        assert details == {"mission": str(mid), "colour": "red", "cost": "1.10"}
        assert (await verify_chain(pg_pool)).ok

    async def test_rolls_back_with_the_callers_transaction(self, pg_pool: asyncpg.Pool) -> None:
        await write_audit(pg_pool, entry(0))

        async def failing_mutation() -> None:
            async with pg_pool.acquire() as conn, conn.transaction():
                await append_audit(conn, entry(1))
                raise RuntimeError("mutation failed")

        with pytest.raises(RuntimeError, match="mutation failed"):
            await failing_mutation()
        await write_audit(pg_pool, entry(2))
        assert await pg_pool.fetchval("SELECT count(*) FROM audit_log") == 2
        report = await verify_chain(pg_pool)
        assert report.ok
        assert report.rows_checked == 2

    async def test_concurrent_writers_do_not_fork_the_chain(self, pg_pool: asyncpg.Pool) -> None:
        await asyncio.gather(*(write_audit(pg_pool, entry(i)) for i in range(40)))
        report = await verify_chain(pg_pool, batch=7)
        assert report.ok, report
        assert report.rows_checked == 40
        forks = await pg_pool.fetchval(
            "SELECT count(*) - count(DISTINCT prev_hash) FROM audit_log WHERE prev_hash IS NOT NULL"
        )
        assert forks == 0

    async def test_refuses_repeatable_read(self, pg_pool: asyncpg.Pool) -> None:
        """A snapshot older than the lock could miss the newest row and fork the chain."""
        async with pg_pool.acquire() as conn:
            with pytest.raises(AuditError, match="READ COMMITTED"):
                async with conn.transaction(isolation="repeatable_read"):
                    await append_audit(conn, entry(1))

    @pytest.mark.parametrize(
        "statement",
        [
            "UPDATE audit_log SET success = false",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ],
    )
    async def test_update_delete_truncate_are_rejected(
        self, pg_pool: asyncpg.Pool, statement: str
    ) -> None:
        await write_audit(pg_pool, entry(1))
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await pg_pool.execute(statement)
        assert await pg_pool.fetchval("SELECT count(*) FROM audit_log") == 1


class TestVerify:
    async def test_empty_log_is_ok(self, pg_pool: asyncpg.Pool) -> None:
        report = await verify_chain(pg_pool)
        assert report.ok
        assert report.rows_checked == 0
        assert report.first_bad_id is None

    async def test_intact_chain(self, pg_pool: asyncpg.Pool) -> None:
        ids = [await write_audit(pg_pool, entry(i)) for i in range(12)]
        report = await verify_chain(pg_pool, batch=5)
        assert report.ok
        assert report.rows_checked == 12
        assert report.last_id == ids[-1]
        head = await pg_pool.fetchval("SELECT hash FROM audit_log WHERE id = $1", ids[-1])
        assert report.head_hash == head.hex()

    async def test_tampered_details_are_reported_at_that_row(self, pg_pool: asyncpg.Pool) -> None:
        ids = [await write_audit(pg_pool, entry(i)) for i in range(10)]
        victim = ids[6]
        await tamper(
            pg_pool,
            "UPDATE audit_log SET details = details || '{\"n\": 999}'::jsonb WHERE id = $1",
            victim,
        )
        report = await verify_chain(pg_pool, batch=4)
        assert not report.ok
        assert report.first_bad_id == victim
        assert report.rows_checked == 7
        assert report.reason is not None
        assert "altered" in report.reason

    async def test_rewritten_row_with_recomputed_hash_shows_at_the_next_row(
        self, pg_pool: asyncpg.Pool
    ) -> None:
        ids = [await write_audit(pg_pool, entry(i)) for i in range(5)]
        await tamper(pg_pool, "UPDATE audit_log SET hash = sha256(hash) WHERE id = $1", ids[2])
        report = await verify_chain(pg_pool)
        assert not report.ok
        assert report.first_bad_id in (ids[2], ids[3])

    async def test_deleted_row_is_detected(self, pg_pool: asyncpg.Pool) -> None:
        ids = [await write_audit(pg_pool, entry(i)) for i in range(8)]
        await tamper(pg_pool, "DELETE FROM audit_log WHERE id = $1", ids[4])
        report = await verify_chain(pg_pool)
        assert not report.ok
        assert report.first_bad_id == ids[5]
        assert report.reason is not None
        assert "deleted" in report.reason
        assert str(ids[3]) in report.reason

    async def test_deleted_first_row_is_detected(self, pg_pool: asyncpg.Pool) -> None:
        ids = [await write_audit(pg_pool, entry(i)) for i in range(3)]
        await tamper(pg_pool, "DELETE FROM audit_log WHERE id = $1", ids[0])
        report = await verify_chain(pg_pool)
        assert not report.ok
        assert report.first_bad_id == ids[1]

    async def test_changed_timestamp_is_detected(self, pg_pool: asyncpg.Pool) -> None:
        ids = [await write_audit(pg_pool, entry(i)) for i in range(3)]
        await tamper(
            pg_pool, "UPDATE audit_log SET at = at - interval '1 hour' WHERE id = $1", ids[1]
        )
        report = await verify_chain(pg_pool)
        assert report.first_bad_id == ids[1]
