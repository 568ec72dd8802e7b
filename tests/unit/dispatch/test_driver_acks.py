"""Commands to drivers are re-sent until acknowledged, then given up and reported."""

from __future__ import annotations

import uuid

from dispatcher.dispatch.driver_acks import AckTracker, AckVerdict
from dispatcher.dispatch.driver_offers import CancelNotice
from dispatcher.links.vehicle_events import CommandAcked
from protocols.driver.models import AckResult

DRIVER = uuid.uuid4()
NOTICE = CancelNotice(DRIVER, "m-1", "leg-1", "cancelled")


def ack(
    cid: str, result: AckResult = AckResult.ACCEPTED, vehicle: uuid.UUID = DRIVER
) -> CommandAcked:
    return CommandAcked(vehicle, 1.0, cid, result, None)


class TestAckTracker:
    def test_an_ack_settles_its_command(self) -> None:
        t = AckTracker(ack_timeout_s=5)
        t.sent("c1", NOTICE, 0.0, ok=True)
        verdict, cmd = t.acked(ack("c1"))
        assert verdict is AckVerdict.ACCEPTED and cmd is not None and cmd.notice == NOTICE
        assert len(t) == 0 and t.due(100.0) == ([], [])

    def test_a_rejection_is_reported_as_such(self) -> None:
        t = AckTracker()
        t.sent("c1", NOTICE, 0.0, ok=True)
        assert t.acked(ack("c1", AckResult.REJECTED))[0] is AckVerdict.REJECTED

    def test_acks_of_other_commands_or_other_drivers_are_untracked(self) -> None:
        t = AckTracker()
        t.sent("c1", NOTICE, 0.0, ok=True)
        assert t.acked(ack("operator-cmd")) == (AckVerdict.UNTRACKED, None)
        assert t.acked(ack("c1", vehicle=uuid.uuid4())) == (AckVerdict.UNTRACKED, None)
        assert len(t) == 1

    def test_an_unacked_command_is_due_again_after_the_timeout(self) -> None:
        t = AckTracker(ack_timeout_s=5, max_sends=3)
        t.sent("c1", NOTICE, 0.0, ok=True)
        assert t.due(4.9) == ([], [])
        again, gave_up = t.due(5.0)
        assert [c.correlation_id for c in again] == ["c1"] and not gave_up

    def test_after_max_sends_it_is_given_up(self) -> None:
        t = AckTracker(ack_timeout_s=5, max_sends=2)
        t.sent("c1", NOTICE, 0.0, ok=True)
        t.sent("c1", NOTICE, 5.0, ok=True)
        again, gave_up = t.due(10.0)
        assert not again and [(c.correlation_id, c.sends) for c in gave_up] == [("c1", 2)]
        assert len(t) == 0

    def test_sends_that_did_not_go_out_do_not_count_but_the_hold_ends_them(self) -> None:
        t = AckTracker(ack_timeout_s=5, max_sends=2, hold_s=60)
        for now in (0.0, 5.0, 10.0, 15.0):
            t.sent("c1", NOTICE, now, ok=False)  # driver offline
        again, _ = t.due(20.0)
        assert [c.sends for c in again] == [0]
        t.sent("c1", NOTICE, 55.0, ok=False)
        again, gave_up = t.due(60.0)
        assert not again and [c.correlation_id for c in gave_up] == ["c1"]
