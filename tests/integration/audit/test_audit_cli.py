"""``fleetd audit verify`` seals, then prints OK and the row count, or the first bad row."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
import structlog

from dispatcher.audit.log import AuditEntry, ChainReport, seal_pending, write_audit
from dispatcher.cli import main
from dispatcher.cli.audit import format_report


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


async def fill(pool: asyncpg.Pool, n: int) -> list[int]:
    return [
        await write_audit(
            pool,
            AuditEntry(
                action="vehicle.pause",
                resource_type="vehicle",
                resource_id=str(uuid.uuid4()),
                success=True,
                details={"i": i},
            ),
        )
        for i in range(n)
    ]


async def verify(dsn: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("FLEETD_DATABASE__DSN", dsn)
    return await asyncio.to_thread(main, ["audit", "verify", "--batch", "3"])


async def test_intact_chain_prints_ok_and_count(
    pg_dsn: str,
    pg_pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Rows written just before (not sealed yet) are sealed by the command and covered."""
    await fill(pg_pool, 7)
    assert await pg_pool.fetchval("SELECT count(*) FROM audit_log WHERE seq IS NULL") == 7
    assert await verify(pg_dsn, monkeypatch) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: 7 rows verified")
    assert out.rstrip().endswith("; 0 rows not sealed yet")
    assert await pg_pool.fetchval("SELECT count(*) FROM audit_log WHERE seq IS NULL") == 0


async def test_tampered_row_is_named_and_exit_1(
    pg_dsn: str,
    pg_pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ids = await fill(pg_pool, 7)
    assert await seal_pending(pg_pool) == 7
    async with pg_pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        await conn.execute("UPDATE audit_log SET success = false WHERE id = $1", ids[3])
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")
    assert await verify(pg_dsn, monkeypatch) == 1
    out = capsys.readouterr().out
    assert f"BROKEN at row id {ids[3]}" in out
    assert "altered" in out


async def test_unreachable_database_is_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import free_port

    assert await verify(f"postgresql://postgres@127.0.0.1:{free_port()}/x", monkeypatch) == 1
    assert "fleetd audit:" in capsys.readouterr().err


def test_report_names_unsealed_rows() -> None:
    ok = ChainReport(
        ok=True,
        rows_checked=3,
        first_bad_id=None,
        reason=None,
        last_id=9,
        head_hash="ab",
        unsealed=2,
    )
    assert format_report(ok) == "OK: 3 rows verified, head id 9 hash ab; 2 rows not sealed yet"
    broken = ChainReport(ok=False, rows_checked=2, first_bad_id=5, reason="altered", unsealed=0)
    assert format_report(broken) == (
        "BROKEN at row id 5 (after 1 good rows): altered; 0 rows not sealed yet"
    )
