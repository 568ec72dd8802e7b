"""Planning snapshots: VROOM JSON files, written atomically, bounded in count and size."""

from __future__ import annotations

import json
from pathlib import Path

from dispatcher.plan_snapshots import record_snapshot
from dispatcher.planner import Problem, Request, Vehicle
from dispatcher.planner.vroom_format import read_problem
from tests.unit.planner.helpers import line_profile


def problem() -> Problem:
    return Problem((Vehicle("v", start=0),), (Request("r", 1, 2),), {"robot": line_profile(4)})


class TestRecordSnapshot:
    def test_snapshot_reads_back_as_the_problem(self, tmp_path: Path) -> None:
        """A snapshot is a VROOM problem that fleetd reads back to the same requests."""
        path = record_snapshot(problem(), tmp_path, max_files=10, max_bytes=10**6)
        again = read_problem(json.loads(path.read_text()))
        assert [r.id for r in again.requests] == ["r"]
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]

    def test_oldest_snapshots_go_beyond_the_file_bound(self, tmp_path: Path) -> None:
        """With max_files=3, the three newest of five remain."""
        paths = [
            record_snapshot(problem(), tmp_path, max_files=3, max_bytes=10**6, now_ns=i)
            for i in range(5)
        ]
        assert sorted(tmp_path.iterdir()) == paths[2:]

    def test_oldest_snapshots_go_beyond_the_size_bound(self, tmp_path: Path) -> None:
        """With room for about two files, only the newest ones stay (always at least one)."""
        first = record_snapshot(problem(), tmp_path, max_files=100, max_bytes=10**6, now_ns=1)
        size = first.stat().st_size
        for i in range(2, 6):
            record_snapshot(problem(), tmp_path, max_files=100, max_bytes=2 * size, now_ns=i)
        assert len(list(tmp_path.iterdir())) == 2
        record_snapshot(problem(), tmp_path, max_files=100, max_bytes=1, now_ns=9)
        assert len(list(tmp_path.iterdir())) == 1
