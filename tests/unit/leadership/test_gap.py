"""The standby's store of the newest changes per facility (dispatcher.leadership.gap)."""

from __future__ import annotations

import uuid

from dispatcher.leadership.gap import TakeoverGap, not_stored

NORTH, SOUTH = uuid.uuid4(), uuid.uuid4()


def test_keeps_only_the_last_seconds_per_facility() -> None:
    gap: TakeoverGap[str] = TakeoverGap(keep_s=10.0)
    for at in (100.0, 105.0, 111.0, 112.0):
        gap.keep(NORTH, at, f"n{at:g}")
    gap.keep(SOUTH, 50.0, "s50")
    assert [i for _, i in gap.take(NORTH)] == ["n105", "n111", "n112"]  # 100 < 112 - 10
    assert gap.take(NORTH) == []  # taken
    assert [i for _, i in gap.take(SOUTH)] == ["s50"]  # another facility's own clock


def test_not_stored_matches_by_key_and_nearby_time() -> None:
    """The old leader stored a's online (heard 0.3 s apart) and nothing after; a second
    online of a, long after, is a change of its own."""
    kept = [(10.0, ("a", "online")), (11.0, ("b", "offline")), (30.0, ("a", "online"))]
    stored = [(("a", "online"), 10.3), (("z", "online"), 11.0)]
    assert not_stored(kept, stored, key=lambda c: c) == [("b", "offline"), ("a", "online")]


def test_each_stored_row_answers_for_one_change() -> None:
    kept = [(10.0, "x"), (10.5, "x")]
    assert not_stored(kept, [("x", 10.2)], key=lambda c: c) == ["x"]


def test_bounded_in_count() -> None:
    gap: TakeoverGap[int] = TakeoverGap(keep_s=1e9, max_items=3)
    for i in range(5):
        gap.keep(NORTH, float(i), i)
    assert len(gap) == 3
    assert [i for _, i in gap.take(NORTH)] == [2, 3, 4]


def test_forget() -> None:
    gap: TakeoverGap[int] = TakeoverGap(keep_s=10.0)
    gap.keep(NORTH, 1.0, 1)
    gap.forget([NORTH])
    assert len(gap) == 0
