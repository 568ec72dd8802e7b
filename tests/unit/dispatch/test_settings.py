"""The [dispatch] settings refuse thresholds in the wrong order."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dispatcher.config import DispatchSettings


class TestDispatchSettings:
    def test_defaults_are_consistent(self) -> None:
        d = DispatchSettings()
        assert d.reserve_pct <= d.charge_below_pct <= d.resume_above_pct

    def test_charge_threshold_below_the_reserve_is_refused(self) -> None:
        """Charging only below the reserve would let a robot be planned into the reserve."""
        with pytest.raises(ValidationError, match="reserve_pct"):
            DispatchSettings(reserve_pct=30, charge_below_pct=20)

    def test_resume_below_charge_threshold_is_refused(self) -> None:
        with pytest.raises(ValidationError):
            DispatchSettings(charge_below_pct=50, resume_above_pct=40)
