"""A leg's progress maps onto the mission's events in order, never skipping or repeating."""

from __future__ import annotations

import pytest

from dispatcher.dispatch.legs import LegProgressKind as K
from dispatcher.dispatch.progress import events_for, picked_up, reached_by, step_of
from dispatcher.missions import lifecycle
from dispatcher.missions.lifecycle import MissionEvent as E
from dispatcher.missions.lifecycle import MissionStatus as S


class TestEventsFor:
    @pytest.mark.parametrize(
        ("kind", "reached", "status", "expected"),
        [
            (K.TO_PICKUP, None, S.ASSIGNED, (E.STARTED,)),
            (K.PICKUP_ARRIVED, None, S.ASSIGNED, (E.STARTED, E.PICKUP_ARRIVED)),
            (K.PICKED_UP, 1, S.IN_PROGRESS, (E.PICKUP_COMPLETED,)),
            (K.TO_DROPOFF, 2, S.IN_PROGRESS, (E.IN_TRANSIT,)),
            (K.DROPOFF_ARRIVED, 3, S.IN_PROGRESS, (E.DROPOFF_ARRIVED,)),
            (K.DROPPED_OFF, 4, S.IN_PROGRESS, (E.DROPOFF_COMPLETED,)),
            (K.FINISHED, 5, S.IN_PROGRESS, (E.COMPLETED,)),
        ],
    )
    def test_each_step_records_its_event(
        self, kind: K, reached: int | None, status: S, expected: tuple[E, ...]
    ) -> None:
        """Every trip step records its mission event (``started`` first when assigned)."""
        assert events_for(kind, reached, status) == expected

    def test_a_late_report_records_the_steps_in_between(self) -> None:
        """``finished`` for a mission still assigned records the whole trip, in order."""
        events = events_for(K.FINISHED, None, S.ASSIGNED)
        assert events[0] is E.STARTED and events[-1] is E.COMPLETED
        status = S.ASSIGNED
        for event in events:  # every one is legal after the one before
            status = lifecycle.apply(status, event).to_status
        assert status is S.COMPLETED

    def test_a_repeated_or_backward_report_records_nothing(self) -> None:
        """A step already recorded (or an earlier one) adds no event."""
        assert events_for(K.PICKED_UP, 2, S.IN_PROGRESS) == ()
        assert events_for(K.TO_PICKUP, 3, S.IN_PROGRESS) == ()

    def test_an_in_progress_mission_is_not_started_again(self) -> None:
        """A handed-over rider (in progress, new leg) does not record ``started`` twice."""
        assert events_for(K.PICKUP_ARRIVED, None, S.IN_PROGRESS) == (E.PICKUP_ARRIVED,)

    @pytest.mark.parametrize("kind", [K.ACCEPTED, K.REFUSED, K.FAILED, K.CHARGING])
    def test_non_trip_reports_record_nothing(self, kind: K) -> None:
        """Acceptance, refusal, failure and charging are the engine's, not trip steps."""
        assert events_for(kind, None, S.ASSIGNED) == ()
        assert step_of(kind) is None

    def test_a_final_mission_records_nothing(self) -> None:
        assert events_for(K.FINISHED, None, S.CANCELLED) == ()


class TestPickedUp:
    def test_on_board_from_the_pickup_on(self) -> None:
        """The rider is on board once ``picked_up`` was reached, not before."""
        assert not picked_up(None)
        assert not picked_up(step_of(K.PICKUP_ARRIVED))
        assert picked_up(step_of(K.PICKED_UP))
        assert picked_up(step_of(K.DROPOFF_ARRIVED))


class TestReachedBy:
    """After a restart the timeline says how far the current vehicle got (issue 18)."""

    @pytest.mark.parametrize(
        ("events", "reached"),
        [
            ((), None),
            ((E.CREATED, E.ASSIGNED), None),
            ((E.CREATED, E.ASSIGNED, E.STARTED), 0),
            ((E.CREATED, E.ASSIGNED, E.STARTED, E.PICKUP_ARRIVED, E.PICKUP_COMPLETED), 2),
            # A reassignment starts over: what the earlier vehicle did is not this one's.
            ((E.ASSIGNED, E.STARTED, E.PICKUP_ARRIVED, E.REASSIGNED), None),
            ((E.ASSIGNED, E.STARTED, E.PICKUP_COMPLETED, E.REASSIGNED, E.IN_TRANSIT), 3),
            # Not trip steps: priority, offers.
            ((E.ASSIGNED, E.OFFERED, E.PRIORITY_CHANGED), None),
        ],
    )
    def test_furthest_step_since_the_last_assignment(
        self, events: tuple[E, ...], reached: int | None
    ) -> None:
        assert reached_by(events) == reached
        assert picked_up(reached) == (reached is not None and reached >= 2)
