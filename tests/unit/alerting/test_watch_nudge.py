"""Which registry changes bring the alert round forward (no services: the round itself is
exercised end to end in tests/integration/console)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from dispatcher.alerting.rules import Thresholds
from dispatcher.alerting.watch import AlertWatch
from dispatcher.config import AlertSettings
from fleet.changes import FleetChange
from fleet.model import ChangeKind


class _NoFleet:
    def snapshot(self) -> tuple[()]:
        return ()

    def get(self, vehicle_id: uuid.UUID) -> None:
        return None

    def take_dirty(self, consumer: object) -> list[object]:
        return []

    def records(self) -> list[object]:
        return []

    def record(self, vehicle_id: uuid.UUID) -> None:
        return None


def _change(kind: ChangeKind, **details: Any) -> FleetChange:
    return FleetChange(uuid.uuid4(), uuid.uuid4(), kind, details, 0.0)


@pytest.mark.parametrize(
    ("change", "urgent"),
    [
        (_change(ChangeKind.WENT_OFFLINE, reason="connection_broken"), True),
        (_change(ChangeKind.ERROR_RAISED, type="motor", level="FATAL"), True),
        (_change(ChangeKind.STATUS_CHANGED, **{"from": "idle", "to": "error"}), True),
        (_change(ChangeKind.ERROR_RAISED, type="laser", level="WARNING"), False),
        (_change(ChangeKind.STATUS_CHANGED, **{"from": "idle", "to": "driving"}), False),
        (_change(ChangeKind.WENT_ONLINE), False),
        (_change(ChangeKind.ERROR_CLEARED, type="motor", level="FATAL"), False),
    ],
)
def test_offline_and_fatal_changes_bring_the_round_forward(
    change: FleetChange, urgent: bool
) -> None:
    watch = AlertWatch(None, _NoFleet(), AlertSettings())  # type: ignore[arg-type]
    assert not watch.nudged
    watch.nudge(change)
    assert watch.nudged is urgent


def test_a_reload_keeps_every_threshold() -> None:
    """``apply`` (SIGHUP) takes all three thresholds; the critical battery level fell back
    to its default on a reload before."""
    watch = AlertWatch(None, _NoFleet(), AlertSettings())  # type: ignore[arg-type]
    watch.apply(AlertSettings(low_battery_pct=30, mission_wait_s=60, critical_battery_pct=15))
    assert watch._limits == Thresholds(30, 60, 15)
