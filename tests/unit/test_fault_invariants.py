"""The fault suite's invariants catch what they claim to (pure parts, no services)."""

from __future__ import annotations

import uuid

from dispatcher.missions.lifecycle import MissionEvent as E
from dispatcher.missions.lifecycle import MissionStatus as S
from sim.invariants import Event, OrderTap, history_problems, holder_problems

M, M2 = uuid.uuid4(), uuid.uuid4()
V, V2 = uuid.uuid4(), uuid.uuid4()


def ev(
    seq: int,
    event: E,
    frm: S | None,
    to: S,
    vehicle: uuid.UUID | None = None,
    mission: uuid.UUID = M,
) -> Event:
    return Event(seq, mission, event, frm, to, vehicle, {})


GOOD = [
    ev(1, E.CREATED, None, S.PENDING),
    ev(2, E.ASSIGNED, S.PENDING, S.ASSIGNED, V),
    ev(3, E.STARTED, S.ASSIGNED, S.IN_PROGRESS, V),
    ev(4, E.PICKUP_ARRIVED, S.IN_PROGRESS, S.IN_PROGRESS, V),
    ev(5, E.COMPLETED, S.IN_PROGRESS, S.COMPLETED, V),
]


class TestHistories:
    def test_a_lifecycle_walk_is_clean(self) -> None:
        assert history_problems(M, GOOD, S.COMPLETED) == []

    def test_a_gap_is_found(self) -> None:
        assert history_problems(M, [GOOD[0], *GOOD[2:]], S.COMPLETED)

    def test_a_step_recorded_twice_is_found(self) -> None:
        twice = [*GOOD[:4], ev(9, E.PICKUP_ARRIVED, S.IN_PROGRESS, S.IN_PROGRESS, V), GOOD[4]]
        assert any("twice" in p for p in history_problems(M, twice, S.COMPLETED))

    def test_the_same_vehicle_given_the_mission_again_starts_a_new_leg(self) -> None:
        """After a takeover a mission on its way to the pickup is let go and planned again,
        to the same robot: ``reassigned``, then its steps afresh (not "recorded twice")."""
        again = [
            *GOOD[:3],
            ev(6, E.UNASSIGNED, S.IN_PROGRESS, S.PENDING, V),
            ev(7, E.REASSIGNED, S.PENDING, S.ASSIGNED, V),
            ev(8, E.STARTED, S.ASSIGNED, S.IN_PROGRESS, V),
            GOOD[3],
            GOOD[4],
        ]
        assert history_problems(M, again, S.COMPLETED) == []

    def test_a_status_that_disagrees_with_the_events_is_found(self) -> None:
        assert history_problems(M, GOOD[:3], S.COMPLETED)


class TestHolders:
    def test_two_missions_on_one_vehicle_are_found(self) -> None:
        events = [
            ev(1, E.ASSIGNED, S.PENDING, S.ASSIGNED, V),
            ev(2, E.ASSIGNED, S.PENDING, S.ASSIGNED, V, mission=M2),
        ]
        assert holder_problems(events)

    def test_a_vehicle_free_again_may_take_the_next(self) -> None:
        events = [
            ev(1, E.ASSIGNED, S.PENDING, S.ASSIGNED, V),
            ev(2, E.COMPLETED, S.IN_PROGRESS, S.COMPLETED, V),
            ev(3, E.ASSIGNED, S.PENDING, S.ASSIGNED, V, mission=M2),
            ev(4, E.REASSIGNED, S.ASSIGNED, S.ASSIGNED, V2, mission=M2),
            ev(5, E.ASSIGNED, S.PENDING, S.ASSIGNED, V, mission=M),
        ]
        assert holder_problems(events) == []


class TestOrderTap:
    def test_two_robots_driving_one_mission_at_once_are_found(self) -> None:
        tap = OrderTap("127.0.0.1", 1, "x")
        tap.note("r1", f"{M}:aaa", 3, 10.0)
        tap.note("r1", f"{M}:aaa", 2, 12.0)
        tap.note("r2", f"{M}:bbb", 3, 11.0)
        assert tap.problems()

    def test_one_after_the_other_is_fine_and_charging_is_ignored(self) -> None:
        tap = OrderTap("127.0.0.1", 1, "x")
        tap.note("r1", f"{M}:aaa", 3, 10.0)
        tap.note("r1", f"{M}:aaa", 0, 11.0)  # done: no nodes left
        tap.note("r2", f"{M}:bbb", 3, 12.0)
        tap.note("r3", f"charge:{V}:ccc", 3, 12.0)
        tap.note("r4", f"charge:{V}:ddd", 3, 12.0)
        assert tap.problems() == []
