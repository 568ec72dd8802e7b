"""Duplicated, replayed and reordered robot states change nothing twice (issue 18)."""

from __future__ import annotations

from typing import Any

from protocols.errors import RejectReason
from tests.unit.links.test_robot_link_limits import KEY, TOPIC, build
from tests.unit.protocols.vda_examples import encode, state_small


def state(header_id: int, at: str, **changes: Any) -> bytes:
    msg = state_small()
    msg["agvPosition"]["mapId"] = "campus"
    msg.update(headerId=header_id, timestamp=at, **changes)
    return encode(msg)


T0, T1, T2 = "2024-05-01T12:00:00Z", "2024-05-01T12:00:01Z", "2024-05-01T12:00:02Z"


class TestReplayedStates:
    def test_the_same_state_twice_is_taken_once(self) -> None:
        link, _, _ = build()
        link.handle(TOPIC, state(5, T0), False)
        link.handle(TOPIC, state(5, T0), False)
        assert link.rejections.counts[RejectReason.REPLAYED] == 1

    def test_an_older_state_arriving_late_changes_nothing(self) -> None:
        """Reordered: the state of 12:00:01 after that of 12:00:02 is refused, so the
        robot's order and battery stay those of the newer one."""
        link, registry, _ = build()
        link.handle(TOPIC, state(7, T2, orderUpdateId=4), False)
        low = {"batteryCharge": 5.0, "charging": False}
        link.handle(TOPIC, state(6, T1, orderUpdateId=3, batteryState=low), False)
        rec = registry.record_by_key(KEY)
        assert rec is not None and rec.battery_pct != 5.0
        assert link.rejections.counts[RejectReason.REPLAYED] == 1

    def test_newer_states_are_taken(self) -> None:
        link, _, _ = build()
        for i, at in enumerate((T0, T1, T2)):
            link.handle(TOPIC, state(i, at), False)
        assert link.rejections.counts.get(RejectReason.REPLAYED, 0) == 0

    def test_a_robot_that_restarted_its_counter_is_heard(self) -> None:
        """headerId back to 0 with a later timestamp: a reboot, not a replay."""
        link, registry, _ = build()
        link.handle(TOPIC, state(900, T0), False)
        battery = {"batteryCharge": 42.0, "charging": False}
        link.handle(TOPIC, state(0, T1, batteryState=battery), False)
        rec = registry.record_by_key(KEY)
        assert rec is not None and rec.battery_pct == 42.0
        assert link.rejections.counts.get(RejectReason.REPLAYED, 0) == 0
