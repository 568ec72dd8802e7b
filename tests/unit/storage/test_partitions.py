"""Partition naming and date math, without a database."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from dispatcher.storage.partitions import (
    Partition,
    day_bounds,
    days_to_ensure,
    expired,
    partition_name,
    retention_cutoff,
)


class TestNaming:
    @pytest.mark.parametrize(
        ("day", "name"),
        [
            (date(2026, 1, 5), "telemetry_p20260105"),
            (date(2024, 2, 29), "telemetry_p20240229"),
            (date(999, 12, 31), "telemetry_p09991231"),
        ],
    )
    def test_name_is_prefix_and_zero_padded_utc_date(self, day: date, name: str) -> None:
        """A day's partition is telemetry_pYYYYMMDD."""
        assert partition_name(day) == name


class TestBounds:
    def test_a_day_is_half_open_from_utc_midnight(self) -> None:
        """Bounds are [D 00:00Z, D+1 00:00Z), timezone-aware."""
        lo, hi = day_bounds(date(2026, 3, 29))  # a DST change in Europe: irrelevant in UTC
        assert lo == datetime(2026, 3, 29, tzinfo=UTC)
        assert hi == datetime(2026, 3, 30, tzinfo=UTC)
        assert (hi - lo).total_seconds() == 86_400

    def test_year_end_rolls_over(self) -> None:
        """The last day of a year ends at the first instant of the next."""
        assert day_bounds(date(2025, 12, 31))[1] == datetime(2026, 1, 1, tzinfo=UTC)


class TestDaysToEnsure:
    def test_from_yesterday_through_ahead(self) -> None:
        """Yesterday (for late rows), today and ``ahead_days`` more."""
        assert days_to_ensure(date(2026, 3, 1), 2) == [
            date(2026, 2, 28),
            date(2026, 3, 1),
            date(2026, 3, 2),
            date(2026, 3, 3),
        ]

    def test_leap_day_included(self) -> None:
        """Calendar arithmetic, not 24-hour steps on naive strings."""
        assert date(2028, 2, 29) in days_to_ensure(date(2028, 2, 28), 1)


class TestExpiry:
    TODAY = date(2026, 5, 10)

    def test_cutoff_is_start_of_today_minus_retention(self) -> None:
        """Rows before midnight UTC of today - retention are past it."""
        assert retention_cutoff(self.TODAY, 30) == datetime(2026, 4, 10, tzinfo=UTC)

    @pytest.mark.parametrize(
        ("lower", "upper", "is_expired"),
        [
            (date(2026, 4, 8), date(2026, 4, 9), True),  # wholly before the cutoff
            (date(2026, 4, 9), date(2026, 4, 10), True),  # ends exactly at the cutoff
            (date(2026, 4, 10), date(2026, 4, 11), False),  # the oldest day still kept
            (date(2026, 4, 1), date(2026, 4, 15), False),  # straddles: still holds live rows
            (None, date(2026, 4, 1), True),  # FROM (MINVALUE), ended long ago
            (date(2026, 1, 1), None, False),  # TO (MAXVALUE): may hold anything
        ],
    )
    def test_expired_when_upper_bound_at_or_before_cutoff(
        self, lower: date | None, upper: date | None, is_expired: bool
    ) -> None:
        """Only a partition every row of which is older than the retention is dropped."""
        part = Partition(
            name="any_name_at_all",
            lower=day_bounds(lower)[0] if lower else None,
            upper=day_bounds(upper)[0] if upper else None,
        )
        cutoff = retention_cutoff(self.TODAY, 30)
        assert (expired([part], cutoff) == [part]) is is_expired

    def test_default_partition_never_expires(self) -> None:
        """A DEFAULT partition has no bounds and is kept."""
        part = Partition(name="telemetry_default", lower=None, upper=None, is_default=True)
        assert expired([part], retention_cutoff(self.TODAY, 1)) == []

    def test_names_do_not_matter(self) -> None:
        """A partition named like an old day but holding future rows stays."""
        part = Partition(
            name="telemetry_p20000101",
            lower=day_bounds(date(2026, 6, 1))[0],
            upper=day_bounds(date(2026, 6, 2))[0],
        )
        assert expired([part], retention_cutoff(self.TODAY, 1)) == []
