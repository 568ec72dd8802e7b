"""Which events consecutive robot states mean: nodes reached, action states, errors."""

from __future__ import annotations

import uuid

from dispatcher.links.robot_progress import Progress, progress_events
from dispatcher.links.vehicle_events import ActionStateChanged, ErrorsChanged, NodeReached
from fleet.model import VehicleError
from protocols.vda5050.base import ActionStatus

VID = uuid.uuid4()
RUNNING, FINISHED = ActionStatus.RUNNING, ActionStatus.FINISHED
ERR = VehicleError("noRoute", "FATAL", "blocked")


def progress(
    node: str | None = "n1",
    seq: int = 0,
    actions: tuple[tuple[str, str | None, ActionStatus], ...] = (),
    errors: tuple[VehicleError, ...] = (),
) -> Progress:
    return Progress("o1", node, seq, actions, errors)


class TestProgressEvents:
    def test_nothing_changed_means_no_events(self) -> None:
        p = progress(actions=(("a1", "pick", RUNNING),))
        assert progress_events(VID, 1.0, p, p) == []

    def test_a_new_last_node_is_a_node_reached(self) -> None:
        events = progress_events(VID, 2.0, progress("n1", 0), progress("n2", 2))
        assert events == [NodeReached(VID, 2.0, "o1", "n2", 2)]

    def test_the_same_node_again_in_a_new_order_is_reached_again(self) -> None:
        events = progress_events(VID, 2.0, progress("n1", 4), progress("n1", 0))
        assert events == [NodeReached(VID, 2.0, "o1", "n1", 0)]

    def test_only_actions_whose_status_changed_are_reported(self) -> None:
        before = progress(actions=(("a1", "pick", RUNNING), ("a2", "drop", RUNNING)))
        after = progress(
            actions=(("a1", "pick", FINISHED), ("a2", "drop", RUNNING), ("a3", None, RUNNING))
        )
        assert progress_events(VID, 3.0, before, after) == [
            ActionStateChanged(VID, 3.0, "a1", "pick", FINISHED),
            ActionStateChanged(VID, 3.0, "a3", None, RUNNING),
        ]

    def test_errors_appearing_and_clearing_are_reported(self) -> None:
        with_error = progress(errors=(ERR,))
        assert progress_events(VID, 4.0, progress(), with_error) == [
            ErrorsChanged(VID, 4.0, (ERR,))
        ]
        assert progress_events(VID, 5.0, with_error, progress()) == [ErrorsChanged(VID, 5.0, ())]

    def test_the_first_state_reports_its_actions_and_errors_not_the_node(self) -> None:
        """A command's acknowledgement may come in the first state fleetd sees."""
        first = progress(
            "n7", 3, actions=(("ack", "pick", FINISHED), ("a9", "lift", RUNNING)), errors=(ERR,)
        )
        assert progress_events(VID, 6.0, None, first) == [
            ActionStateChanged(VID, 6.0, "ack", "pick", FINISHED),
            ActionStateChanged(VID, 6.0, "a9", "lift", RUNNING),
            ErrorsChanged(VID, 6.0, (ERR,)),
        ]
