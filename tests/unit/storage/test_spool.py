"""The local spool: fsync'd append-only rows that survive a crash, bounded, flushed in order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dispatcher.storage.spool import Spool, SpooledRow, SpoolFull


async def _spool(path: Path, max_bytes: int = 1_000_000) -> Spool:
    spool = Spool(path, max_bytes=max_bytes)
    await spool.load()
    return spool


class TestSpool:
    async def test_rows_are_kept_in_order_and_survive_a_restart(self, tmp_path: Path) -> None:
        """What was appended is read back, oldest first, by the next process."""
        path = tmp_path / "state" / "spool.jsonl"
        spool = await _spool(path)
        first = await spool.append("audit", {"n": 1})
        second = await spool.append("mission_event", {"n": 2})
        again = await _spool(path)
        assert [r.id for r in again.pending()] == [first.id, second.id]
        assert [r.body["n"] for r in again.pending()] == [1, 2]
        assert again.size == spool.size == path.stat().st_size

    async def test_each_row_has_its_own_id(self, tmp_path: Path) -> None:
        spool = await _spool(tmp_path / "s.jsonl")
        rows = [await spool.append("audit", {}) for _ in range(5)]
        assert len({r.id for r in rows}) == 5

    async def test_a_full_spool_refuses_and_keeps_what_it_has(self, tmp_path: Path) -> None:
        """Bounded: the row that does not fit raises SpoolFull; nothing else changes."""
        spool = await _spool(tmp_path / "s.jsonl", max_bytes=4096)
        body = {"pad": "x" * 900}
        for _ in range(4):
            await spool.append("audit", body)
        with pytest.raises(SpoolFull):
            await spool.append("audit", body)
        assert len(spool) == 4
        assert not spool.has_room(1000)
        assert (tmp_path / "s.jsonl").stat().st_size == spool.size <= 4096

    async def test_removing_flushed_rows_keeps_the_rest(self, tmp_path: Path) -> None:
        path = tmp_path / "s.jsonl"
        spool = await _spool(path)
        rows = [await spool.append("audit", {"n": i}) for i in range(5)]
        await spool.remove_first(3)
        assert [r.id for r in spool.pending()] == [r.id for r in rows[3:]]
        assert [r.id for r in (await _spool(path)).pending()] == [r.id for r in rows[3:]]
        await spool.remove_first(2)
        assert spool.empty and path.stat().st_size == 0

    async def test_a_torn_last_line_is_dropped_at_load(self, tmp_path: Path) -> None:
        """A crash in the middle of a write leaves half a line: its append never returned,
        so it is dropped; the complete rows before it stay."""
        path = tmp_path / "s.jsonl"
        spool = await _spool(path)
        kept = await spool.append("audit", {"n": 1})
        with path.open("ab") as f:
            f.write(b'{"id": "half a row')
        again = await _spool(path)
        assert [r.id for r in again.pending()] == [kept.id]
        assert path.read_bytes().endswith(b"\n")

    async def test_a_garbled_line_is_dropped_not_fatal(self, tmp_path: Path) -> None:
        path = tmp_path / "s.jsonl"
        path.write_bytes(b"not json\n" + SpooledRow.parse(_line()).line())
        again = await _spool(path)
        assert len(again) == 1


def _line() -> bytes:
    row = {"id": "6f1c1c8e-0000-4000-8000-000000000001", "kind": "audit", "at": "t", "body": {}}
    return json.dumps(row).encode() + b"\n"
