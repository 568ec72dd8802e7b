"""The plausibility filter for drivers' position fixes (pure)."""

from __future__ import annotations

import random
import uuid

from fleet.fixes import FixFilter, FixLimits, FixReason, distance_m
from fleet.model import GeoPosition

T0 = 1_900_000_000.0
LAT, LON = 52.5, 13.4
#: Degrees of latitude per metre.
M = 1 / 111_195.0
D = uuid.uuid4()


def fix(north_m: float = 0.0, accuracy: float | None = 5.0) -> GeoPosition:
    return GeoPosition(LAT + north_m * M, LON, None, accuracy)


class TestJudge:
    def test_the_first_fix_is_taken(self) -> None:
        assert FixFilter().take(D, fix(), T0) is None

    def test_a_poor_reported_accuracy_is_refused(self) -> None:
        f = FixFilter(FixLimits(max_accuracy_m=30.0))
        assert f.take(D, fix(accuracy=45.0), T0) is FixReason.ACCURACY
        assert f.take(D, fix(accuracy=30.0), T0) is None  # the limit itself is fine

    def test_driving_at_a_plausible_speed_is_taken(self) -> None:
        f = FixFilter(FixLimits(max_speed_mps=15.0))
        for i in range(20):
            assert f.take(D, fix(north_m=12.0 * 2 * i), T0 + 2 * i) is None  # 12 m/s

    def test_a_jump_faster_than_the_limit_is_refused(self) -> None:
        """40 m in 2 s with 5 m accuracy each: 40 > 15 * 2 + 10."""
        f = FixFilter(FixLimits(max_speed_mps=15.0))
        f.take(D, fix(), T0)
        assert f.take(D, fix(north_m=41.0), T0 + 2) is FixReason.SPEED
        assert f.take(D, fix(north_m=39.0), T0 + 2) is None

    def test_missing_accuracy_counts_as_the_default(self) -> None:
        f = FixFilter(FixLimits(max_speed_mps=15.0, default_accuracy_m=10.0))
        f.take(D, fix(accuracy=None), T0)
        assert f.take(D, fix(north_m=49.0, accuracy=None), T0 + 2) is None  # 30 + 20
        assert f.take(D, fix(north_m=110.0, accuracy=None), T0 + 4) is FixReason.SPEED

    def test_a_real_jump_is_taken_once_time_allows_it(self) -> None:
        """Compared with the last *accepted* fix: after a gap long enough, it is taken."""
        f = FixFilter(FixLimits(max_speed_mps=15.0))
        f.take(D, fix(), T0)
        assert f.take(D, fix(north_m=200.0), T0 + 1) is FixReason.SPEED
        assert f.take(D, fix(north_m=200.0), T0 + 13) is None

    def test_drivers_are_judged_apart(self) -> None:
        f = FixFilter()
        f.take(D, fix(), T0)
        assert f.take(uuid.uuid4(), fix(north_m=5000.0), T0 + 1) is None

    def test_forget_starts_afresh(self) -> None:
        f = FixFilter()
        f.take(D, fix(), T0)
        f.forget(D)
        assert f.take(D, fix(north_m=5000.0), T0 + 1) is None


class TestUnreliable:
    def test_sustained_refusals_make_a_driver_unreliable_until_a_quiet_window(self) -> None:
        f = FixFilter(FixLimits(unreliable_after=3, window_s=60.0))
        f.take(D, fix(), T0)
        for i in range(1, 3):
            f.take(D, fix(accuracy=80.0), T0 + i)
        assert f.unreliable(T0 + 3) == frozenset()
        f.take(D, fix(accuracy=80.0), T0 + 3)
        assert f.unreliable(T0 + 3) == {D}
        assert f.unreliable(T0 + 62) == {D}  # the last refusal is within the window
        assert f.unreliable(T0 + 64) == frozenset()

    def test_sparse_refusals_are_not_sustained_noise(self) -> None:
        f = FixFilter(FixLimits(unreliable_after=3, window_s=60.0))
        for i in range(6):
            f.take(D, fix(accuracy=80.0), T0 + 40 * i)
            assert f.unreliable(T0 + 40 * i) == frozenset()

    def test_the_simulators_40_m_scatter_is_largely_refused(self) -> None:
        """A driver standing still whose fixes scatter ~40 m (the sim's noisy_gps at 1x,
        2 s apart, claiming 5 m accuracy): a good part of the fixes is refused (those
        within 40 m of the last accepted one pass), and it is unreliable."""
        rng = random.Random(7)
        f = FixFilter()
        f.take(D, fix(), T0)
        refused = 0
        for i in range(1, 61):
            noisy = GeoPosition(
                LAT + rng.gauss(0, 40.0) * M, LON + rng.gauss(0, 40.0) * M * 1.64, None, 5.0
            )
            refused += f.take(D, noisy, T0 + 2 * i) is not None
        assert refused > 20
        assert f.unreliable(T0 + 120) == {D}


def test_distance() -> None:
    assert abs(distance_m(LAT, LON, LAT + 100 * M, LON) - 100.0) < 0.5
