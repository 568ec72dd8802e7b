"""The tally of refused requests (issue 13, item 1): bounded rows, counts, cut paths."""

from __future__ import annotations

from datetime import UTC, datetime

from dispatcher.auth.roles import Permission
from dispatcher.ops.access import MAX_PATH, Denial
from dispatcher.ops.denials import OVERFLOW_SOURCE, DenialTally, single_entry

AT = datetime(2026, 1, 1, tzinfo=UTC)


def denial(
    source: str = "198.51.100.1", reason: str = "missing_token", path: str = "/v1/x"
) -> Denial:
    return Denial(
        reason=reason,
        route="GET /v1/x",
        method="GET",
        path=path,
        required=[Permission.FLEET_VIEW],
        source=source,
    )


class TestTally:
    def test_a_flood_of_one_key_is_one_row_now_and_one_count_later(self) -> None:
        tally = DenialTally()
        written_now = [tally.add(denial(), AT) for _ in range(1000)]
        assert written_now.count(True) == 1 and written_now[0]
        rows = tally.roll()
        assert len(rows) == 1
        assert rows[0].details["count"] == 999
        assert rows[0].details["aggregated"] is True
        assert rows[0].source == "198.51.100.1"
        assert tally.roll() == []  # the interval is over: nothing counted twice

    def test_keys_separate_sources_and_reasons(self) -> None:
        tally = DenialTally()
        for source in ("a", "b"):
            for reason in ("missing_token", "unknown_token"):
                assert tally.add(denial(source, reason), AT)
                tally.add(denial(source, reason), AT)
        rows = tally.roll()
        assert sorted((r.source, r.reason, r.details["count"]) for r in rows) == [
            ("a", "missing_token", 1),
            ("a", "unknown_token", 1),
            ("b", "missing_token", 1),
            ("b", "unknown_token", 1),
        ]

    def test_memory_and_immediate_writes_are_bounded(self) -> None:
        tally = DenialTally(max_keys=10, max_immediate=3)
        now = [tally.add(denial(source=f"10.0.{i // 256}.{i % 256}"), AT) for i in range(5000)]
        assert now.count(True) == 3
        assert len(tally) == 11  # ten sources and the overflow key
        rows = tally.roll()
        assert sum(r.details["count"] for r in rows) + 3 == 5000
        overflow = [r for r in rows if r.source == OVERFLOW_SOURCE]
        assert len(overflow) == 1 and overflow[0].details["count"] == 4990

    def test_paths_are_cut(self) -> None:
        long = denial(path="/v1/" + "a" * 20_000)
        row = single_entry(long)
        assert len(row.details["path"]) == MAX_PATH
        tally = DenialTally()
        tally.add(long, AT)
        tally.add(long, AT)
        assert len(tally.roll()[0].details["path"]) == MAX_PATH
