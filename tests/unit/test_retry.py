"""The back-off rule: capped exponential growth, full jitter, reset on success; no sleeping."""

from __future__ import annotations

import pytest

from dispatcher.retry import Backoff, BackoffPolicy


def highest(low: float, high: float) -> float:
    return high


def lowest(low: float, high: float) -> float:
    return low


class TestBackoffPolicy:
    @pytest.mark.parametrize(
        ("failures", "ceiling"),
        [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (50, 5.0), (10_000, 5.0)],
    )
    def test_the_ceiling_doubles_per_failure_up_to_the_cap(
        self, failures: int, ceiling: float
    ) -> None:
        assert BackoffPolicy(base_s=0.5, cap_s=5.0).ceiling(failures) == ceiling

    def test_the_ceiling_never_drops_below_the_floor(self) -> None:
        assert BackoffPolicy(base_s=0.1, cap_s=0.2, floor_s=1.0).ceiling(0) == 1.0

    def test_the_delay_is_drawn_between_floor_and_ceiling(self) -> None:
        calls: list[tuple[float, float]] = []

        def rand(low: float, high: float) -> float:
            calls.append((low, high))
            return (low + high) / 2

        assert BackoffPolicy(base_s=1.0, cap_s=8.0, floor_s=0.5).delay(2, rand) == 2.25
        assert calls == [(0.5, 4.0)]

    @pytest.mark.parametrize("kwargs", [{"base_s": 0.0}, {"cap_s": -1.0}, {"floor_s": -0.1}])
    def test_nonsense_settings_are_refused(self, kwargs: dict[str, float]) -> None:
        with pytest.raises(ValueError, match="positive"):
            BackoffPolicy(**kwargs)


class TestBackoff:
    def test_each_failure_widens_the_next_wait_until_a_success_resets_it(self) -> None:
        b = Backoff(BackoffPolicy(base_s=1.0, cap_s=4.0), rand=highest)
        assert [b.next_delay() for _ in range(4)] == [1.0, 2.0, 4.0, 4.0]
        assert b.failures == 4
        b.reset()
        assert b.failures == 0
        assert b.next_delay() == 1.0

    def test_full_jitter_can_retry_at_once(self) -> None:
        b = Backoff(BackoffPolicy(base_s=1.0, cap_s=4.0), rand=lowest)
        assert b.next_delay() == 0.0

    async def test_wait_sleeps_the_delay_through_the_injected_sleep(self) -> None:
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        b = Backoff(BackoffPolicy(base_s=0.25, cap_s=1.0), rand=highest, sleep=sleep)
        assert await b.wait() == 0.25
        assert await b.wait() == 0.5
        assert slept == [0.25, 0.5]
