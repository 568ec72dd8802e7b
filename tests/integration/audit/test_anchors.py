"""Truncation and rewrites of the audit chain, invisible to the chain alone, reported by
``fleetd audit verify --expect-head`` and ``--checkpoints`` (keyed checkpoints)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import structlog

from dispatcher.audit.checkpoints import AuditCheckpointer, parse_checkpoints
from dispatcher.audit.log import AuditEntry, _row_canonical, chain_hash, seal_pending, write_audit
from dispatcher.cli import main
from dispatcher.config import AuditSettings


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


async def fill(pool: asyncpg.Pool, n: int) -> None:
    for i in range(n):
        entry = AuditEntry(
            action="vehicle.pause", resource_type="vehicle", resource_id=str(uuid.uuid4()),
            success=True, details={"i": i},
        )  # fmt: skip
        await write_audit(pool, entry)
    assert await seal_pending(pool) == n


async def verify(dsn: str, monkeypatch: pytest.MonkeyPatch, *extra: str) -> int:
    monkeypatch.setenv("FLEETD_DATABASE__DSN", dsn)
    return await asyncio.to_thread(main, ["audit", "verify", *extra])


async def cut_tail(pool: asyncpg.Pool, keep: int) -> None:
    """What the owner of the table can do: drop the newest rows."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        await conn.execute("DELETE FROM audit_log WHERE seq > $1", keep)
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")


async def rewrite(pool: asyncpg.Pool, seq: int) -> None:
    """Change row ``seq`` and re-compute every hash from there on: a valid chain again."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        await conn.execute("UPDATE audit_log SET success = false WHERE seq = $1", seq)
        prev = await conn.fetchval("SELECT hash FROM audit_log WHERE seq = $1", seq - 1)
        rows = await conn.fetch(
            "SELECT *, details::text AS details_text FROM audit_log WHERE seq >= $1 ORDER BY seq",
            seq,
        )
        for row in rows:
            digest = chain_hash(prev, _row_canonical(row, row["seq"]))
            await conn.execute(
                "UPDATE audit_log SET prev_hash = $1, hash = $2 WHERE id = $3",
                prev, digest, row["id"],
            )  # fmt: skip
            prev = digest
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")


class TestExpectHead:
    async def test_a_cut_tail_is_reported(
        self,
        pg_dsn: str,
        pg_pool: asyncpg.Pool,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """The chain alone says OK after its newest rows are gone; the head printed by an
        earlier verify, kept elsewhere, shows the cut."""
        await fill(pg_pool, 7)
        assert await verify(pg_dsn, monkeypatch) == 0
        match = re.search(r"\(anchor (\d+:[0-9a-f]{64})\)", capsys.readouterr().out)
        assert match is not None
        anchor = match[1]
        assert anchor.startswith("7:")
        assert await verify(pg_dsn, monkeypatch, "--expect-head", anchor) == 0
        await cut_tail(pg_pool, keep=5)
        capsys.readouterr()
        assert await verify(pg_dsn, monkeypatch) == 0  # the gap this closes
        assert await verify(pg_dsn, monkeypatch, "--expect-head", anchor) == 1
        out = capsys.readouterr().out
        assert "ANCHOR truncated: --expect-head names seq 7, the chain ends at seq 5" in out

    async def test_a_malformed_anchor_is_exit_2(
        self, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert await verify(pg_dsn, monkeypatch, "--expect-head", "7:xyz") == 2


class TestCheckpoints:
    async def test_a_rewrite_behind_a_keyed_checkpoint_is_reported(
        self,
        pg_dsn: str,
        pg_pool: asyncpg.Pool,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Rewriting row 2 and re-hashing the rest fools the chain, not a checkpoint; and
        editing the checkpoint file to match breaks its MAC."""
        key_file, cp_file = tmp_path / "audit.key", tmp_path / "checkpoints.jsonl"
        key_file.write_bytes(b"0123456789abcdef0123456789abcdef\n")
        audit = AuditSettings(checkpoint_file=cp_file, checkpoint_key_file=key_file)
        checkpointer = AuditCheckpointer(pg_pool, audit, "fleetd-test")
        await fill(pg_pool, 3)
        assert await checkpointer.checkpoint(key_file.read_bytes().strip()) is not None
        await fill(pg_pool, 2)
        point = await checkpointer.checkpoint(key_file.read_bytes().strip())
        assert point is not None and point.seq == 5
        assert len(parse_checkpoints(cp_file.read_text().splitlines())) == 2
        monkeypatch.setenv("FLEETD_AUDIT__CHECKPOINT_KEY_FILE", str(key_file))
        assert await verify(pg_dsn, monkeypatch, "--checkpoints", str(cp_file)) == 0

        await rewrite(pg_pool, seq=2)
        capsys.readouterr()
        assert await verify(pg_dsn, monkeypatch) == 0  # the chain alone is fooled
        assert await verify(pg_dsn, monkeypatch, "--checkpoints", str(cp_file)) == 1
        out = capsys.readouterr().out
        assert out.count("ANCHOR rewritten: checkpoints.jsonl#") == 2

        new_head = await pg_pool.fetchval("SELECT hash FROM audit_log WHERE seq = 5")
        forged = cp_file.read_text().replace(point.hash_hex, bytes(new_head).hex())
        cp_file.write_text(forged)
        assert await verify(pg_dsn, monkeypatch, "--checkpoints", str(cp_file)) == 1
        assert "ANCHOR forged: checkpoints.jsonl#2 (seq 5) has no valid MAC" in (
            capsys.readouterr().out
        )
