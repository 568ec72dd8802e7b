"""The mission state machine, checked against a table written out by hand.

Every (status, event) pair is listed: the expected next status, or None when the event is
illegal there. The table is the specification; the module must agree with every cell.
"""

from __future__ import annotations

import pytest

from dispatcher.missions import lifecycle
from dispatcher.missions.lifecycle import (
    FINAL_STATUSES,
    IllegalTransition,
    MissionEvent,
    MissionStatus,
    Priority,
    Transition,
)

S = MissionStatus
E = MissionEvent

# Columns: pending, assigned, in_progress, completed, cancelled, failed.
_COLUMNS = (S.PENDING, S.ASSIGNED, S.IN_PROGRESS, S.COMPLETED, S.CANCELLED, S.FAILED)
_P, _A, _I, _C, _X, _F = _COLUMNS
_no = None

EXPECTED: dict[MissionEvent, tuple[MissionStatus | None, ...]] = {
    #                     pending  assigned in_prog  completed cancelled failed
    E.CREATED:           (_no,     _no,     _no,     _no,      _no,      _no),
    E.ASSIGNED:          (_A,      _no,     _no,     _no,      _no,      _no),
    E.STARTED:           (_no,     _I,      _no,     _no,      _no,      _no),
    E.PICKUP_ARRIVED:    (_no,     _no,     _I,      _no,      _no,      _no),
    E.PICKUP_COMPLETED:  (_no,     _no,     _I,      _no,      _no,      _no),
    E.IN_TRANSIT:        (_no,     _no,     _I,      _no,      _no,      _no),
    E.DROPOFF_ARRIVED:   (_no,     _no,     _I,      _no,      _no,      _no),
    E.DROPOFF_COMPLETED: (_no,     _no,     _I,      _no,      _no,      _no),
    E.COMPLETED:         (_no,     _no,     _C,      _no,      _no,      _no),
    E.CANCELLED:         (_X,      _X,      _X,      _no,      _no,      _no),
    E.FAILED:            (_F,      _F,      _F,      _no,      _no,      _no),
    E.REASSIGNED:        (_A,      _A,      _I,      _no,      _no,      _no),
    E.OFFERED:           (_P,      _A,      _no,     _no,      _no,      _no),
    E.DECLINED:          (_P,      _P,      _no,     _no,      _no,      _no),
    E.EXPIRED:           (_P,      _P,      _no,     _no,      _no,      _no),
    E.PRIORITY_CHANGED:  (_P,      _A,      _I,      _no,      _no,      _no),
    E.UNASSIGNED:        (_no,     _P,      _P,      _no,      _no,      _no),
    E.HELD:              (_no,     _no,     _I,      _no,      _no,      _no),
}  # fmt: skip

CELLS = [
    pytest.param(status, event, EXPECTED[event][col], id=f"{status.value}-{event.value}")
    for event in MissionEvent
    for col, status in enumerate(_COLUMNS)
]


class TestTable:
    def test_the_table_covers_every_event_and_status(self) -> None:
        """The expectation table names every event, with one column per status."""
        assert set(EXPECTED) == set(MissionEvent)
        assert set(_COLUMNS) == set(MissionStatus)

    @pytest.mark.parametrize(("status", "event", "target"), CELLS)
    def test_apply_agrees_with_the_table(
        self, status: MissionStatus, event: MissionEvent, target: MissionStatus | None
    ) -> None:
        """apply() returns the table's next status, or raises IllegalTransition with data."""
        if target is None:
            with pytest.raises(IllegalTransition) as info:
                lifecycle.apply(status, event)
            assert info.value.status is status
            assert info.value.event is event
            assert event not in info.value.allowed
            assert not lifecycle.is_allowed(status, event)
        else:
            result = lifecycle.apply(status, event)
            assert result == Transition(from_status=status, to_status=target, event=event)
            assert lifecycle.is_allowed(status, event)
            assert event in lifecycle.allowed_events(status)


class TestShape:
    def test_final_statuses_allow_nothing(self) -> None:
        """Completed, cancelled and failed missions accept no event at all."""
        for status in FINAL_STATUSES:
            assert status.is_final
            assert lifecycle.allowed_events(status) == ()

    def test_active_statuses_can_always_be_cancelled_or_failed(self) -> None:
        """Every non-final status can end in cancelled or failed."""
        for status in lifecycle.ACTIVE_STATUSES:
            assert lifecycle.apply(status, E.CANCELLED).to_status is S.CANCELLED
            assert lifecycle.apply(status, E.FAILED).to_status is S.FAILED

    def test_created_is_only_the_initial_transition(self) -> None:
        """A mission is born pending by the created event, which never applies later."""
        assert lifecycle.initial() == Transition(None, S.PENDING, E.CREATED)
        assert lifecycle.initial().changes_status

    def test_same_status_events_do_not_change_status(self) -> None:
        """Progress and bookkeeping events are transitions to the same status."""
        assert not lifecycle.apply(S.IN_PROGRESS, E.PICKUP_ARRIVED).changes_status
        assert lifecycle.apply(S.ASSIGNED, E.STARTED).changes_status

    def test_names_are_accepted_as_plain_strings(self) -> None:
        """apply() takes the stored text of a status and an event."""
        assert lifecycle.apply("pending", "assigned").to_status is S.ASSIGNED

    def test_unknown_names_are_value_errors(self) -> None:
        """A name that is no status or event is a ValueError, not an IllegalTransition."""
        with pytest.raises(ValueError, match="not a valid"):
            lifecycle.apply("parked", "assigned")
        with pytest.raises(ValueError, match="not a valid"):
            lifecycle.apply("pending", "teleported")

    def test_illegal_transition_message_explains(self) -> None:
        """The message says why: the final status, or which events are allowed instead."""
        with pytest.raises(IllegalTransition, match="cancelled, which is final"):
            lifecycle.apply(S.CANCELLED, E.CANCELLED)
        with pytest.raises(IllegalTransition, match="only these are allowed: assigned"):
            lifecycle.apply(S.PENDING, E.STARTED)


class TestPriority:
    def test_ranks_order_priorities(self) -> None:
        """low < normal < high < urgent, as 0..3 (the database's priority_rank)."""
        assert [p.rank for p in Priority] == [0, 1, 2, 3]
