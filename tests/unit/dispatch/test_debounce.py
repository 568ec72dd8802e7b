"""Re-plans are debounced: a burst makes one, a trickle still makes one every max wait."""

from __future__ import annotations

from dispatcher.dispatch.debounce import Debouncer


class TestDebouncer:
    def test_nothing_changed_nothing_due(self) -> None:
        d = Debouncer(quiet_s=0.2, max_wait_s=1.0)
        assert d.due_at() is None and not d.take(100.0)

    def test_a_burst_makes_one_replan_after_the_quiet_time(self) -> None:
        """Marks closer than the quiet time push the re-plan back; then it fires once."""
        d = Debouncer(quiet_s=0.2, max_wait_s=1.0)
        for t in (0.0, 0.1, 0.2):
            d.mark(t)
        assert not d.take(0.3)
        assert d.take(0.4)
        assert not d.take(0.5)

    def test_a_steady_trickle_is_not_held_past_the_max_wait(self) -> None:
        d = Debouncer(quiet_s=0.2, max_wait_s=1.0)
        t = 0.0
        while t < 1.0:
            d.mark(t)
            t += 0.1
        assert d.due_at() == 1.0
        assert d.take(1.0)
