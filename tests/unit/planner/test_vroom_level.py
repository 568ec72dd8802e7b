"""VROOM's exploration level is lowered to what its untimed constructions allow."""

from __future__ import annotations

from dispatcher.planner.vroom_seed import (
    estimated_init_s,
    fitting_level,
    settling_searches,
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


class TestSettlingSearches:
    """VROOM runs as many searches as the measured length of one lets settle."""

    def test_whole_rounds_of_threads_with_a_margin(self) -> None:
        """0.1 s a search, 1.2 margin: 8 rounds in 1 s, 2 searches each."""
        assert settling_searches(0.1, 1.0, 2, 32) == 16

    def test_never_more_than_the_level_runs(self) -> None:
        assert settling_searches(0.001, 10.0, 2, 32) == 32
        assert settling_searches(0.001, 10.0, 2, 8) == 8

    def test_none_when_one_search_does_not_fit_again(self) -> None:
        assert settling_searches(0.5, 0.55, 2, 32) == 0
        assert settling_searches(0.5, -0.1, 2, 32) == 0

    def test_a_slower_machine_runs_fewer(self) -> None:
        """The same instance, one search measured at 0.05 s and at 0.2 s."""
        assert settling_searches(0.2, 0.9, 2, 32) < settling_searches(0.05, 0.9, 2, 32)

    def test_more_threads_run_more_rounds_at_once(self) -> None:
        assert settling_searches(0.1, 1.0, 4, 32) == 32
