"""VROOM's exploration level is lowered to what its untimed constructions allow."""

from __future__ import annotations

from dispatcher.planner.vroom_seed import (
    estimated_init_s,
    estimated_settle_s,
    fitting_level,
    settling_level,
)


class TestFittingLevel:
    def test_highest_level_whose_constructions_fit(self) -> None:
        """0.1 s per construction, 2 threads, 1 s: level 3 (8 per thread) fits, 4 (12)
        does not."""
        assert fitting_level(0.1, 1.0, 2, 5) == 3

    def test_never_above_the_wanted_level(self) -> None:
        assert fitting_level(0.001, 10.0, 2, 2) == 2

    def test_level_zero_when_nothing_fits(self) -> None:
        assert fitting_level(10.0, 1.0, 2, 5) == 0

    def test_more_threads_fit_a_higher_level(self) -> None:
        """Level 5's 32 constructions: 16 per thread on 2 threads, 8 on 4."""
        assert fitting_level(0.1, 1.0, 4, 5) == 5


class TestEstimate:
    def test_grows_faster_than_linearly(self) -> None:
        assert estimated_init_s(400) > 4 * estimated_init_s(200)


class TestSettlingLevel:
    """The level is also lowered so that each of VROOM's solutions gets time to settle."""

    def test_long_limits_keep_the_wanted_level(self) -> None:
        assert settling_level(50, 10.0, 2, 5) == 5

    def test_short_limits_on_larger_problems_take_fewer_solutions(self) -> None:
        assert settling_level(200, 10.0, 2, 5) < 5
        assert settling_level(100, 1.0, 2, 5) < settling_level(50, 1.0, 2, 5)

    def test_within_levels_zero_to_wanted(self) -> None:
        assert settling_level(1000, 0.1, 2, 5) == 0
        assert settling_level(10, 100.0, 2, 2) == 2

    def test_settling_grows_faster_than_linearly(self) -> None:
        assert estimated_settle_s(100) > 3 * estimated_settle_s(50)
