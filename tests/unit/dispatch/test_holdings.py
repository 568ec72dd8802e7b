"""Holdings enforce one leg per vehicle and one vehicle per mission."""

from __future__ import annotations

import uuid

import pytest

from dispatcher.dispatch.holdings import DoubleHold, Holdings
from dispatcher.dispatch.legs import Leg

FAC = uuid.uuid4()


def leg(vehicle: uuid.UUID, mission: uuid.UUID | None) -> Leg:
    return Leg(uuid.uuid4().hex, vehicle, FAC, mission, ())


class TestHoldings:
    def test_a_vehicle_gets_one_leg(self) -> None:
        h, v = Holdings(), uuid.uuid4()
        h.hold(leg(v, uuid.uuid4()))
        with pytest.raises(DoubleHold):
            h.hold(leg(v, uuid.uuid4()))

    def test_a_mission_gets_one_vehicle(self) -> None:
        h, m = Holdings(), uuid.uuid4()
        h.hold(leg(uuid.uuid4(), m))
        with pytest.raises(DoubleHold):
            h.hold(leg(uuid.uuid4(), m))

    def test_release_frees_both(self) -> None:
        h, v, m = Holdings(), uuid.uuid4(), uuid.uuid4()
        first = h.hold(leg(v, m))
        assert h.of_mission(m) is first and h.by_leg_id(first.leg.leg_id) is first
        assert h.release(v) is first
        assert h.is_free(v) and h.of_mission(m) is None
        h.hold(leg(uuid.uuid4(), m))  # the mission may now go elsewhere

    def test_forget_mission_clears_horizons_and_holds(self) -> None:
        h, v, m = Holdings(), uuid.uuid4(), uuid.uuid4()
        h.horizon[v] = (uuid.uuid4(), m)
        h.held[m] = "fatal_error"
        h.forget_mission(m)
        assert m not in h.horizon[v] and m not in h.held
