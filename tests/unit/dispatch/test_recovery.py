"""Lost legs: re-plan what is not picked up, hold what is; operator choices per situation."""

from __future__ import annotations

import pytest

from dispatcher.dispatch.legs import LegFailure as F
from dispatcher.dispatch.legs import LegProgressKind as K
from dispatcher.dispatch.recovery import (
    LostLeg,
    Recovery,
    Resolution,
    choices,
    failure_of,
    recover,
    refusal_event,
    resolution_events,
)
from dispatcher.dispatch.zone_rules import zone_verdict
from dispatcher.missions import lifecycle
from dispatcher.missions.lifecycle import MissionEvent as E
from dispatcher.missions.lifecycle import MissionStatus as S


class TestRecover:
    @pytest.mark.parametrize(
        "failure",
        [F.VEHICLE_OFFLINE, F.FATAL_ERROR, F.ORDER_REJECTED, F.DECLINED, F.OFFER_EXPIRED,
         F.NOT_TAKEN, F.NOT_IN_CONTROL],
    )  # fmt: skip
    def test_not_picked_up_is_replanned(self, failure: F) -> None:
        """Whatever went wrong, a mission whose rider is not on board is planned again."""
        assert recover(LostLeg(failure, picked_up=False, status=S.ASSIGNED)) is Recovery.REPLAN

    @pytest.mark.parametrize("failure", [F.VEHICLE_OFFLINE, F.FATAL_ERROR, F.ACTION_FAILED])
    def test_picked_up_is_held_for_an_operator(self, failure: F) -> None:
        """A rider on board is never moved silently."""
        assert recover(LostLeg(failure, picked_up=True, status=S.IN_PROGRESS)) is Recovery.HOLD

    def test_charging_trips_and_final_missions_are_dropped(self) -> None:
        assert recover(LostLeg(F.FATAL_ERROR, picked_up=False, status=None)) is Recovery.DROP
        assert recover(LostLeg(F.CANCELLED, picked_up=False, status=S.CANCELLED)) is Recovery.DROP


class TestRefusals:
    def test_driver_refusals_record_their_event(self) -> None:
        """Declines and expiries are recorded at once; other refusals by ``reassigned``."""
        assert refusal_event(F.DECLINED) is E.DECLINED
        assert refusal_event(F.OFFER_EXPIRED) is E.EXPIRED
        assert refusal_event(F.ORDER_REJECTED) is None

    def test_failure_of_reports(self) -> None:
        """A refusal or failure without a reason still carries one."""
        assert failure_of(K.REFUSED, None) is F.ORDER_REJECTED
        assert failure_of(K.FAILED, None) is F.FATAL_ERROR
        assert failure_of(K.REFUSED, F.DECLINED) is F.DECLINED
        assert failure_of(K.PICKED_UP, None) is None


class TestResolve:
    def test_a_held_mission_offers_every_choice(self) -> None:
        assert set(choices(S.IN_PROGRESS, held=True)) == set(Resolution)

    def test_a_mission_not_held_may_only_fail(self) -> None:
        assert choices(S.ASSIGNED, held=False) == (Resolution.FAIL,)

    def test_a_final_mission_has_no_choice(self) -> None:
        assert choices(S.COMPLETED, held=True) == ()

    @pytest.mark.parametrize("resolution", [Resolution.FAIL, Resolution.COMPLETE])
    def test_resolution_events_are_legal_in_progress(self, resolution: Resolution) -> None:
        """fail and complete are legal, in order, for a mission in progress."""
        status = S.IN_PROGRESS
        for event in resolution_events(resolution):
            status = lifecycle.apply(status, event).to_status
        assert status.is_final


class TestZoneVerdict:
    def test_no_go_wins(self) -> None:
        assert zone_verdict(True, True, True) == "in_no_go_zone"

    def test_outside_the_service_area(self) -> None:
        assert zone_verdict(False, True, False) == "outside_service_area"

    def test_no_service_area_means_anywhere(self) -> None:
        assert zone_verdict(False, False, False) is None
        assert zone_verdict(False, True, True) is None
