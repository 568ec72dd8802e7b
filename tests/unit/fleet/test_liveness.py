"""Liveness decisions over plain timestamps."""

from __future__ import annotations

import pytest

from fleet.liveness import is_fresh, offline_deadline, seen_at


class TestSeenAt:
    def test_live_message_counts_as_now(self) -> None:
        """A message delivered live proves life at the time it arrived, whatever it says."""
        assert seen_at(1000.0, 10.0, retained=False) == 1000.0

    def test_retained_message_counts_at_its_own_time(self) -> None:
        """A retained ONLINE proves life only when the vehicle wrote it."""
        assert seen_at(1000.0, 900.0, retained=True) == 900.0

    def test_retained_message_from_the_future_is_capped(self) -> None:
        """A vehicle clock ahead of ours cannot keep a retained message fresh."""
        assert seen_at(1000.0, 5000.0, retained=True) == 1000.0

    def test_retained_message_without_time_proves_nothing(self) -> None:
        assert seen_at(1000.0, None, retained=True) is None


class TestFreshness:
    @pytest.mark.parametrize(
        ("last_seen", "now", "fresh"),
        [(None, 10.0, False), (10.0, 10.0, True), (10.0, 14.9, True), (10.0, 15.0, False)],
    )
    def test_is_fresh(self, last_seen: float | None, now: float, fresh: bool) -> None:
        """Fresh strictly within the timeout (5 s here)."""
        assert is_fresh(last_seen, now, 5.0) is fresh

    def test_deadline(self) -> None:
        assert offline_deadline(10.0, 5.0) == 15.0
