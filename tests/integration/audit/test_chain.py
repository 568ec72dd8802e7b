"""The audit log is append-only and hash-chained when sealed; verify finds tampering, deletion."""

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
    seal_all,
    seal_pending,
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


async def write_sealed(pool: asyncpg.Pool, n: int) -> list[int]:
    """Append ``n`` rows one after the other and seal them; their ids."""
    ids = [await write_audit(pool, entry(i)) for i in range(n)]
    assert await seal_all(pool) == n
    return ids


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
        # The current form covers the chain position; without one it is the pre-0005 form.
        at_1 = canonical_row(**fields, seq=1)  # type: ignore[arg-type]
        assert b'"seq":1' in at_1
        assert at_1 != canonical_row(**fields, seq=2)  # type: ignore[arg-type]
        assert b'"seq"' not in canonical_row(**fields)  # type: ignore[arg-type]


class TestAppend:
    async def test_rows_are_inserted_unsealed(self, pg_pool: asyncpg.Pool) -> None:
        await write_audit(pg_pool, entry(0))
        row = await pg_pool.fetchrow("SELECT seq, prev_hash, hash, hash_format FROM audit_log")
        assert row is not None
        assert dict(row) == {"seq": None, "prev_hash": None, "hash": None, "hash_format": 2}
        report = await verify_chain(pg_pool)
        assert report.ok
        assert (report.rows_checked, report.unsealed) == (0, 1)

    async def test_rows_chain_to_their_predecessor(self, pg_pool: asyncpg.Pool) -> None:
        ids = [await write_audit(pg_pool, entry(i)) for i in range(3)]
        assert await seal_pending(pg_pool) == 3
        assert await seal_pending(pg_pool) == 0
        rows = await pg_pool.fetch("SELECT id, seq, prev_hash, hash FROM audit_log ORDER BY seq")
        assert [r["id"] for r in rows] == ids
        assert [r["seq"] for r in rows] == [1, 2, 3]
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
        await seal_pending(pg_pool)
        report = await verify_chain(pg_pool)
        assert report.ok
        assert report.rows_checked == 1

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
        assert await seal_pending(pg_pool) == 2
        report = await verify_chain(pg_pool)
        assert report.ok
        assert report.rows_checked == 2

    async def test_concurrent_writers_do_not_fork_the_chain(self, pg_pool: asyncpg.Pool) -> None:
        await asyncio.gather(*(write_audit(pg_pool, entry(i)) for i in range(40)))
        assert await seal_all(pg_pool, limit=15) == 40
        report = await verify_chain(pg_pool, batch=7)
        assert report.ok, report
        assert report.rows_checked == 40
        forks = await pg_pool.fetchval(
            "SELECT count(*) - count(DISTINCT prev_hash) FROM audit_log WHERE prev_hash IS NOT NULL"
        )
        assert forks == 0

    @pytest.mark.parametrize("isolation", ["repeatable_read", "serializable"])
    async def test_append_works_at_any_isolation_level(
        self, pg_pool: asyncpg.Pool, isolation: str
    ) -> None:
        """Appending reads nothing of the chain, so the caller's snapshot does not matter."""
        await write_sealed(pg_pool, 2)
        async with pg_pool.acquire() as conn, conn.transaction(isolation=isolation):  # type: ignore[arg-type]
            await append_audit(conn, entry(3))
        await seal_pending(pg_pool)
        report = await verify_chain(pg_pool)
        assert report.ok
        assert report.rows_checked == 3

    async def test_sealing_refuses_a_callers_transaction(self, pg_pool: asyncpg.Pool) -> None:
        """The lock and the sealed rows would be held until the caller's commit."""
        await write_audit(pg_pool, entry(1))
        async with pg_pool.acquire() as conn, conn.transaction():
            with pytest.raises(AuditError, match="outside any transaction"):
                await seal_pending(conn)

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
        await write_sealed(pg_pool, 1)  # a sealed row
        await write_audit(pg_pool, entry(2))  # and an unsealed one
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await pg_pool.execute(statement)
        assert await pg_pool.fetchval("SELECT count(*) FROM audit_log") == 2


class TestVerify:
    async def test_empty_log_is_ok(self, pg_pool: asyncpg.Pool) -> None:
        report = await verify_chain(pg_pool)
        assert report.ok
        assert report.rows_checked == 0
        assert report.first_bad_id is None

    async def test_intact_chain(self, pg_pool: asyncpg.Pool) -> None:
        ids = await write_sealed(pg_pool, 12)
        report = await verify_chain(pg_pool, batch=5)
        assert report.ok
        assert report.rows_checked == 12
        assert report.last_id == ids[-1]
        assert report.last_seq == 12
        assert report.unsealed == 0
        head = await pg_pool.fetchval("SELECT hash FROM audit_log WHERE id = $1", ids[-1])
        assert report.head_hash == head.hex()

    async def test_tampered_details_are_reported_at_that_row(self, pg_pool: asyncpg.Pool) -> None:
        ids = await write_sealed(pg_pool, 10)
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
        ids = await write_sealed(pg_pool, 5)
        await tamper(pg_pool, "UPDATE audit_log SET hash = sha256(hash) WHERE id = $1", ids[2])
        report = await verify_chain(pg_pool)
        assert not report.ok
        assert report.first_bad_id in (ids[2], ids[3])

    async def test_deleted_row_is_detected(self, pg_pool: asyncpg.Pool) -> None:
        ids = await write_sealed(pg_pool, 8)
        await tamper(pg_pool, "DELETE FROM audit_log WHERE id = $1", ids[4])
        report = await verify_chain(pg_pool)
        assert not report.ok
        assert report.first_bad_id == ids[5]
        assert report.reason is not None
        assert "deleted" in report.reason
        assert str(ids[3]) in report.reason

    async def test_deleted_first_row_is_detected(self, pg_pool: asyncpg.Pool) -> None:
        ids = await write_sealed(pg_pool, 3)
        await tamper(pg_pool, "DELETE FROM audit_log WHERE id = $1", ids[0])
        report = await verify_chain(pg_pool)
        assert not report.ok
        assert report.first_bad_id == ids[1]

    async def test_changed_timestamp_is_detected(self, pg_pool: asyncpg.Pool) -> None:
        ids = await write_sealed(pg_pool, 3)
        await tamper(
            pg_pool, "UPDATE audit_log SET at = at - interval '1 hour' WHERE id = $1", ids[1]
        )
        report = await verify_chain(pg_pool)
        assert report.first_bad_id == ids[1]

    async def test_deleted_row_with_renumbered_chain_is_detected(
        self, pg_pool: asyncpg.Pool
    ) -> None:
        """Closing the seq gap after a deletion does not help: seq is in the hash."""
        ids = await write_sealed(pg_pool, 5)
        await tamper(pg_pool, "DELETE FROM audit_log WHERE id = $1", ids[2])
        for seq in (4, 5):
            await tamper(pg_pool, "UPDATE audit_log SET seq = $1 WHERE seq = $2", seq - 1, seq)
        report = await verify_chain(pg_pool)
        assert not report.ok
        assert report.first_bad_id == ids[3]
        assert report.reason is not None
        assert "deleted" in report.reason

    async def test_unsealed_rows_are_counted_not_checked(self, pg_pool: asyncpg.Pool) -> None:
        await write_sealed(pg_pool, 3)
        for i in range(2):
            await write_audit(pg_pool, entry(10 + i))
        report = await verify_chain(pg_pool)
        assert report.ok
        assert (report.rows_checked, report.last_seq, report.unsealed) == (3, 3, 2)
