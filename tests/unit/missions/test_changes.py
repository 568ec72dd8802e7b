"""What an event does to a mission's fields (pure: no database)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest

from dispatcher.missions.changes import plan_change
from dispatcher.missions.domain import Location, MissionRecord
from dispatcher.missions.errors import VersionConflict, WrongVehicle
from dispatcher.missions.lifecycle import IllegalTransition, MissionEvent, MissionStatus, Priority

E = MissionEvent
V1, V2 = uuid.uuid4(), uuid.uuid4()
T0 = datetime(2030, 1, 1, tzinfo=UTC)
PENDING = MissionRecord(
    id=uuid.uuid4(),
    facility_id=uuid.uuid4(),
    status=MissionStatus.PENDING,
    priority=Priority.NORMAL,
    pickup=Location(1.0, 2.0, "A"),
    dropoff=Location(1.0, 3.0, "B"),
    window_start=None,
    window_end=None,
    requirements={"vehicle_kind": "any"},
    passenger_ref=None,
    passenger_name=None,
    notes=None,
    created_by="u",
    vehicle_id=None,
    version=1,
    created_at=T0,
    updated_at=T0,
    completed_at=None,
)
ASSIGNED = dataclasses.replace(PENDING, status=MissionStatus.ASSIGNED, vehicle_id=V1, version=2)


class TestPlanChange:
    def test_assign_sets_the_vehicle(self) -> None:
        """assigned moves pending to assigned with the vehicle given."""
        change = plan_change(PENDING, E.ASSIGNED, vehicle_id=V1)
        assert change is not None
        assert change.step.to_status is MissionStatus.ASSIGNED
        assert (change.vehicle_id, change.event_vehicle_id) == (V1, V1)

    def test_offer_names_the_vehicle_but_does_not_assign(self) -> None:
        """An offer records the driver it went to; the mission keeps no vehicle."""
        change = plan_change(PENDING, E.OFFERED, vehicle_id=V2)
        assert change is not None
        assert (change.vehicle_id, change.event_vehicle_id) == (None, V2)

    def test_decline_of_an_assigned_mission_releases_the_vehicle(self) -> None:
        """declined while assigned: back to pending, no vehicle; the event names the decliner."""
        change = plan_change(ASSIGNED, E.DECLINED, vehicle_id=V1)
        assert change is not None
        assert change.step.to_status is MissionStatus.PENDING
        assert (change.vehicle_id, change.event_vehicle_id) == (None, V1)

    def test_reassign_records_the_previous_vehicle(self) -> None:
        """reassigned swaps the vehicle and keeps the old one in the details."""
        change = plan_change(ASSIGNED, E.REASSIGNED, vehicle_id=V2)
        assert change is not None
        assert change.vehicle_id == V2
        assert change.details == {"previous_vehicle_id": str(V1)}

    def test_unassigned_returns_to_pending_without_a_vehicle(self) -> None:
        """A vehicle lost before pickup: pending, no vehicle; the event names the lost one."""
        started = dataclasses.replace(ASSIGNED, status=MissionStatus.IN_PROGRESS)
        for before in (ASSIGNED, started):
            change = plan_change(before, E.UNASSIGNED, reason="vehicle_offline")
            assert change is not None
            assert change.step.to_status is MissionStatus.PENDING
            assert (change.vehicle_id, change.event_vehicle_id) == (None, V1)
            assert change.details == {"reason": "vehicle_offline"}

    def test_reassign_from_pending_has_no_previous_vehicle_to_name(self) -> None:
        """After unassigned, the next vehicle is ``reassigned`` with the reason only."""
        change = plan_change(PENDING, E.REASSIGNED, vehicle_id=V2, reason="order_rejected")
        assert change is not None
        assert change.step.to_status is MissionStatus.ASSIGNED and change.vehicle_id == V2
        assert change.details == {"reason": "order_rejected"}

    def test_held_sets_the_reason_until_the_mission_moves_on(self) -> None:
        """held keeps the reason; progress keeps it; reassigned and the end clear it."""
        running = dataclasses.replace(ASSIGNED, status=MissionStatus.IN_PROGRESS)
        change = plan_change(running, E.HELD, reason="fatal_error")
        assert change is not None and change.held_reason == "fatal_error"
        assert change.step.to_status is MissionStatus.IN_PROGRESS and change.vehicle_id == V1
        held = dataclasses.replace(running, held_reason="fatal_error")
        kept = plan_change(held, E.PRIORITY_CHANGED, priority=Priority.HIGH)
        assert kept is not None and kept.held_reason == "fatal_error"
        for event, kw in (
            (E.REASSIGNED, {"vehicle_id": V2}),
            (E.FAILED, {}),
            (E.COMPLETED, {}),
            (E.CANCELLED, {}),
        ):
            cleared = plan_change(held, event, **kw)  # type: ignore[arg-type]
            assert cleared is not None and cleared.held_reason is None, event

    def test_held_is_only_for_a_mission_under_way(self) -> None:
        """A rider can only be on board of a mission in progress."""
        with pytest.raises(IllegalTransition):
            plan_change(ASSIGNED, E.HELD, reason="x")

    def test_progress_events_keep_the_vehicle(self) -> None:
        """Events without a vehicle argument are recorded against the mission's vehicle."""
        change = plan_change(ASSIGNED, E.STARTED, reason="go")
        assert change is not None
        assert (change.vehicle_id, change.event_vehicle_id) == (V1, V1)
        assert change.details == {"reason": "go"}

    def test_priority_change_records_old_and_new(self) -> None:
        """A new priority is recorded with its predecessor; the same one is no change."""
        change = plan_change(PENDING, E.PRIORITY_CHANGED, priority=Priority.URGENT)
        assert change is not None
        assert change.priority is Priority.URGENT
        assert change.details == {"old": "normal", "new": "urgent"}
        assert plan_change(PENDING, E.PRIORITY_CHANGED, priority=Priority.NORMAL) is None

    def test_stale_version_is_refused_first(self) -> None:
        """A stale expected_version is a VersionConflict carrying both versions."""
        with pytest.raises(VersionConflict) as exc:
            plan_change(ASSIGNED, E.STARTED, expected_version=1)
        assert (exc.value.expected, exc.value.actual) == (1, 2)

    def test_another_vehicle_cannot_report_on_the_mission(self) -> None:
        """A report from a vehicle the mission is not assigned to is refused."""
        with pytest.raises(WrongVehicle) as exc:
            plan_change(ASSIGNED, E.STARTED, vehicle_id=V2)
        assert (exc.value.assigned, exc.value.reported) == (V1, V2)

    def test_illegal_events_are_refused(self) -> None:
        """The lifecycle decides: priority changes on a final mission are illegal."""
        done = dataclasses.replace(PENDING, status=MissionStatus.COMPLETED)
        with pytest.raises(IllegalTransition):
            plan_change(done, E.PRIORITY_CHANGED, priority=Priority.HIGH)

    @pytest.mark.parametrize("event", [E.ASSIGNED, E.REASSIGNED, E.OFFERED, E.PRIORITY_CHANGED])
    def test_missing_arguments_are_programming_errors(self, event: MissionEvent) -> None:
        """Events that need a vehicle or a priority raise ValueError without one."""
        with pytest.raises(ValueError, match="needs a"):
            plan_change(PENDING, event)
