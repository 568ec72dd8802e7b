"""The driver side of a leg: offers answered or expired, trips reported, drivers lost."""

from __future__ import annotations

import uuid

import pytest

from dispatcher.dispatch.driver_offers import (
    CancelNotice,
    Ignored,
    OfferBook,
    offer_id_for,
)
from dispatcher.dispatch.legs import Leg, LegFailure, LegProgressKind, Stop, StopAction
from dispatcher.links.vehicle_events import OfferAnswered, TripProgressed
from protocols.driver.models import Decision, TripEventKind

K = LegProgressKind
DRIVER = uuid.uuid4()
OTHER = uuid.uuid4()
MISSION = uuid.uuid4()
FACILITY = uuid.uuid4()


def leg(leg_id: str = "leg-1", vehicle: uuid.UUID = DRIVER) -> Leg:
    stops = (
        Stop("Ward 3", None, 52.52, 13.40, StopAction.PICK),
        Stop("Radiology", None, 52.53, 13.41, StopAction.DROP),
    )
    return Leg(leg_id, vehicle, FACILITY, MISSION, stops)


def answer(offer_id: str, decision: Decision, vehicle: uuid.UUID = DRIVER) -> OfferAnswered:
    return OfferAnswered(
        vehicle, 5.0, offer_id, decision, "on a break" if decision == "decline" else None
    )


def trip(
    event: TripEventKind, mission: uuid.UUID = MISSION, vehicle: uuid.UUID = DRIVER
) -> TripProgressed:
    return TripProgressed(vehicle, 7.0, str(mission), event, None, None)


def kinds(book: OfferBook, *events: TripProgressed) -> list[K]:
    out: list[K] = []
    for ev in events:
        out.extend(p.kind for p in book.trip(ev).progress)
    return out


@pytest.fixture
def book() -> OfferBook:
    b = OfferBook(grace_s=1.0)
    b.offered(leg(), expires_at=30.0)
    return b


class TestOfferIds:
    def test_a_leg_id_in_the_protocol_alphabet_is_the_offer_id(self) -> None:
        assert offer_id_for("leg-7:2") == "leg-7:2"

    def test_any_other_leg_id_gets_a_stable_digest(self) -> None:
        odd = "leg with spaces/" + "x" * 80
        assert offer_id_for(odd) == offer_id_for(odd)
        assert offer_id_for(odd).startswith("leg-") and len(offer_id_for(odd)) <= 64
        assert offer_id_for(odd) != offer_id_for(odd + "y")


class TestAnswers:
    def test_an_accept_is_accepted(self, book: OfferBook) -> None:
        out = book.answer(answer("leg-1", Decision.ACCEPT))
        assert [(p.kind, p.leg_id, p.mission_id) for p in out.progress] == [
            (K.ACCEPTED, "leg-1", MISSION)
        ]
        assert out.ignored is None and not out.cancels

    def test_a_decline_is_refused_with_the_drivers_reason(self, book: OfferBook) -> None:
        (p,) = book.answer(answer("leg-1", Decision.DECLINE)).progress
        assert (p.kind, p.failure, p.detail) == (K.REFUSED, LegFailure.DECLINED, "on a break")
        assert len(book) == 0

    def test_an_answer_for_an_unknown_offer_is_counted_and_ignored(self, book: OfferBook) -> None:
        out = book.answer(answer("nope", Decision.DECLINE))
        assert out.ignored is Ignored.UNKNOWN_OFFER and not out.progress and not out.cancels

    def test_a_late_accept_of_an_unknown_offer_is_answered_with_a_cancel(
        self, book: OfferBook
    ) -> None:
        out = book.answer(answer("gone", Decision.ACCEPT))
        assert out.ignored is Ignored.UNKNOWN_OFFER
        assert out.cancels == (CancelNotice(DRIVER, None, "gone", "offer no longer open"),)

    def test_an_answer_from_another_driver_changes_nothing(self, book: OfferBook) -> None:
        out = book.answer(answer("leg-1", Decision.ACCEPT, OTHER))
        assert out.ignored is Ignored.WRONG_DRIVER and not out.progress
        assert out.cancels == (CancelNotice(OTHER, str(MISSION), "leg-1", "offer no longer open"),)
        assert book.answer(answer("leg-1", Decision.ACCEPT)).progress[0].kind is K.ACCEPTED

    def test_a_second_answer_is_stale(self, book: OfferBook) -> None:
        book.answer(answer("leg-1", Decision.ACCEPT))
        repeat = book.answer(answer("leg-1", Decision.ACCEPT))
        assert repeat.ignored is Ignored.UNKNOWN_OFFER and not repeat.cancels
        late_decline = book.answer(answer("leg-1", Decision.DECLINE))
        assert late_decline.ignored is Ignored.UNKNOWN_OFFER and len(book) == 1


class TestTrips:
    def test_a_full_trip_reports_every_step_then_finished(self, book: OfferBook) -> None:
        book.answer(answer("leg-1", Decision.ACCEPT))
        E = TripEventKind
        events = [E.TO_PICKUP, E.ARRIVED_PICKUP, E.PICKED_UP, E.TO_DROPOFF, E.ARRIVED_DROPOFF]
        got = kinds(book, *(trip(e) for e in [*events, E.DROPPED_OFF]))
        assert got == [
            K.TO_PICKUP, K.PICKUP_ARRIVED, K.PICKED_UP, K.TO_DROPOFF,
            K.DROPOFF_ARRIVED, K.DROPPED_OFF, K.FINISHED,
        ]  # fmt: skip
        assert len(book) == 0

    def test_skipped_steps_are_implied_in_order(self, book: OfferBook) -> None:
        book.answer(answer("leg-1", Decision.ACCEPT))
        assert kinds(book, trip(TripEventKind.PICKED_UP)) == [
            K.TO_PICKUP, K.PICKUP_ARRIVED, K.PICKED_UP,
        ]  # fmt: skip
        assert kinds(book, trip(TripEventKind.ARRIVED_DROPOFF)) == [
            K.TO_DROPOFF, K.DROPOFF_ARRIVED,
        ]  # fmt: skip

    def test_a_repeated_or_backward_step_is_ignored(self, book: OfferBook) -> None:
        book.answer(answer("leg-1", Decision.ACCEPT))
        kinds(book, trip(TripEventKind.PICKED_UP))
        for ev in (TripEventKind.PICKED_UP, TripEventKind.ARRIVED_PICKUP):
            out = book.trip(trip(ev))
            assert out.ignored is Ignored.STALE_STEP and not out.progress

    def test_a_trip_event_before_the_answer_implies_acceptance(self, book: OfferBook) -> None:
        assert kinds(book, trip(TripEventKind.TO_PICKUP)) == [K.ACCEPTED, K.TO_PICKUP]
        assert book.answer(answer("leg-1", Decision.ACCEPT)).ignored is Ignored.UNKNOWN_OFFER

    @pytest.mark.parametrize(
        ("mission", "vehicle"),
        [(uuid.uuid4(), DRIVER), (MISSION, OTHER)],
        ids=["mission", "driver"],
    )
    def test_a_trip_for_no_held_leg_is_ignored(
        self, book: OfferBook, mission: uuid.UUID, vehicle: uuid.UUID
    ) -> None:
        out = book.trip(trip(TripEventKind.PICKED_UP, mission, vehicle))
        assert out.ignored is Ignored.UNKNOWN_TRIP and not out.progress

    def test_a_problem_is_no_progress(self, book: OfferBook) -> None:
        book.answer(answer("leg-1", Decision.ACCEPT))
        out = book.trip(trip(TripEventKind.PROBLEM))
        assert out.ignored is Ignored.PROBLEM and not out.progress and len(book) == 1


class TestExpiry:
    def test_an_offer_is_open_until_its_expiry_plus_grace(self, book: OfferBook) -> None:
        assert not book.expire(30.5).progress
        out = book.expire(31.0)
        (p,) = out.progress
        assert (p.kind, p.failure, p.at) == (K.REFUSED, LegFailure.OFFER_EXPIRED, 31.0)
        assert out.cancels == (CancelNotice(DRIVER, str(MISSION), "leg-1", "offer expired"),)
        assert len(book) == 0 and not book.expire(99.0).progress

    def test_an_accepted_leg_never_expires(self, book: OfferBook) -> None:
        book.answer(answer("leg-1", Decision.ACCEPT))
        assert not book.expire(1e9).progress and len(book) == 1

    def test_an_answer_after_expiry_is_stale(self, book: OfferBook) -> None:
        book.expire(40.0)
        out = book.answer(answer("leg-1", Decision.ACCEPT))
        assert out.ignored is Ignored.UNKNOWN_OFFER and not out.progress
        assert out.cancels == (CancelNotice(DRIVER, None, "leg-1", "offer no longer open"),)


class TestLostDrivers:
    def test_an_open_offer_is_refused_and_an_accepted_leg_failed(self, book: OfferBook) -> None:
        book.offered(leg("leg-2", OTHER), expires_at=30.0)
        book.answer(answer("leg-2", Decision.ACCEPT, OTHER))
        out = book.lost([DRIVER, OTHER], 9.0)
        got = {(p.leg_id, p.kind, p.failure) for p in out.progress}
        assert got == {
            ("leg-1", K.REFUSED, LegFailure.VEHICLE_OFFLINE),
            ("leg-2", K.FAILED, LegFailure.VEHICLE_OFFLINE),
        }
        assert len(book) == 0

    def test_other_drivers_legs_stay(self, book: OfferBook) -> None:
        assert not book.lost([OTHER], 9.0).progress and len(book) == 1


class TestRelease:
    def test_a_re_offer_of_the_same_leg_replaces_it(self, book: OfferBook) -> None:
        book.offered(leg(), expires_at=60.0)
        assert len(book) == 1 and not book.expire(40.0).progress

    def test_trip_events_go_to_the_latest_leg_of_a_mission(self, book: OfferBook) -> None:
        """A mission offered again to the same driver (a new leg) takes the trip events,
        even once the older leg is dropped."""
        book.offered(leg("leg-2"), expires_at=60.0)
        book.drop("leg-1")
        out = book.trip(trip(TripEventKind.TO_PICKUP))
        assert [(p.leg_id, p.kind) for p in out.progress] == [
            ("leg-2", K.ACCEPTED), ("leg-2", K.TO_PICKUP),
        ]  # fmt: skip

    def test_a_dropped_leg_is_forgotten(self, book: OfferBook) -> None:
        assert book.drop("leg-1") is not None and book.drop("leg-1") is None
        assert book.answer(answer("leg-1", Decision.DECLINE)).ignored is Ignored.UNKNOWN_OFFER
