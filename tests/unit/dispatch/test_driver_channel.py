"""The driver channel's decisions over a registry and a recording outbound, with a clock of
its own: what is sent when, and what the engine hears (the broker is in the integration
tests)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from dispatcher.config import Settings
from dispatcher.dispatch.driver_channel import DriverChannelOptions, DriverLegChannel
from dispatcher.dispatch.driver_offers import TRIP_STEPS
from dispatcher.dispatch.legs import Leg, LegFailure, LegProgressKind, Stop, StopAction
from dispatcher.links.commands import CommandReason, CommandResult, VehicleCommand, result
from dispatcher.links.vehicle_events import CommandAcked, OfferAnswered, TripProgressed
from fleet.model import ConnectionState, DriverAvailability, VehicleKey, VehicleKind
from fleet.record import VehicleRecord
from fleet.registry import FleetRegistry
from fleet.reports import DriverState, Heard
from geo.facility_maps import FacilityMaps
from protocols.driver.models import AckResult, Decision, JobOffer, Priority, TripEventKind

K = LegProgressKind
T0 = 1_000.0


@dataclass
class Outbound:
    """Keeps what the channel sent; ``reason`` decides every result."""

    offers: list[JobOffer] = field(default_factory=list)
    cancels: list[dict[str, Any]] = field(default_factory=list)
    reason: CommandReason = CommandReason.SENT

    async def offer_job(self, rec: VehicleRecord, offer: JobOffer) -> CommandResult:
        self.offers.append(offer)
        return result(rec.id, VehicleCommand.OFFER, self.reason, offer.offer_id, "")

    async def cancel_job(
        self,
        rec: VehicleRecord,
        correlation_id: str,
        *,
        mission_id: str | None,
        offer_id: str | None,
        message: str | None = None,
    ) -> CommandResult:
        self.cancels.append(
            {"cid": correlation_id, "mission": mission_id, "offer": offer_id, "message": message}
        )
        return result(rec.id, VehicleCommand.CANCEL_ORDER, self.reason, correlation_id, "")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    registry: FleetRegistry
    out: Outbound
    clock: Clock
    channel: DriverLegChannel
    driver: VehicleRecord

    def leg(self, leg_id: str = "leg-1", **kw: Any) -> Leg:
        stops = kw.pop(
            "stops",
            (
                Stop("Ward 3", None, 52.52, 13.40, StopAction.PICK),
                Stop("Radiology", None, 52.53, 13.41, StopAction.DROP),
            ),
        )
        return Leg(
            leg_id, self.driver.id, uuid.uuid4(), kw.pop("mission", uuid.uuid4()), stops, **kw
        )

    def connection(self, state: ConnectionState) -> None:
        now = time.time()
        self.registry.apply_connection(self.driver, state, Heard(now, now))


@pytest.fixture
def rig() -> Rig:
    settings = Settings()
    registry = FleetRegistry(
        maps=FacilityMaps(settings.facility_specs),
        default_facility_id=settings.default_facility.id,
        heartbeat_timeout_s=5.0,
    )
    driver = registry.register(VehicleKey(VehicleKind.DRIVER, "", f"d-{uuid.uuid4().hex[:6]}"))
    out, clock = Outbound(), Clock()
    options = DriverChannelOptions(
        offer_timeout_s=30, offer_grace_s=1, ack_timeout_s=5, max_sends=2
    )
    r = Rig(registry, out, clock, DriverLegChannel(registry, out, options, clock=clock), driver)
    r.connection(ConnectionState.ONLINE)
    return r


class TestRelease:
    async def test_the_offer_carries_the_leg_and_its_expiry(self, rig: Rig) -> None:
        leg = rig.leg(priority="urgent", notes="oxygen")
        assert (await rig.channel.release(leg)).ok
        (offer,) = rig.out.offers
        assert (offer.offer_id, offer.mission_id) == ("leg-1", str(leg.mission_id))
        assert (offer.pickup.name, offer.dropoff.lat) == ("Ward 3", 52.53)
        assert offer.expires_at.timestamp() == T0 + 30
        assert (offer.priority, offer.notes) == (Priority.URGENT, "oxygen")
        assert rig.channel.book.get("leg-1") is not None

    @pytest.mark.parametrize(
        "kw",
        [
            {"mission": None},
            {"stops": (Stop("Charger", None, 52.5, 13.4, StopAction.CHARGE),)},
            {"stops": (Stop("x", None, 99.0, 13.4, StopAction.PICK),) * 0},
        ],
        ids=["charging-trip", "charge-stop", "no-stops"],
    )
    async def test_a_leg_that_is_no_pickup_and_dropoff_is_impossible(
        self, rig: Rig, kw: dict[str, Any]
    ) -> None:
        res = await rig.channel.release(rig.leg(**kw))
        assert res.reason is CommandReason.NOT_SUPPORTED and not rig.out.offers
        assert len(rig.channel.book) == 0

    async def test_an_offline_driver_gets_no_offer(self, rig: Rig) -> None:
        rig.connection(ConnectionState.OFFLINE)
        res = await rig.channel.release(rig.leg())
        assert res.reason is CommandReason.VEHICLE_OFFLINE and not rig.out.offers

    async def test_an_offer_the_broker_did_not_take_is_not_held(self, rig: Rig) -> None:
        rig.out.reason = CommandReason.BROKER_DOWN
        assert not (await rig.channel.release(rig.leg())).ok
        assert len(rig.channel.book) == 0


class TestObserve:
    async def test_answers_and_trip_become_progress(self, rig: Rig) -> None:
        leg = rig.leg()
        await rig.channel.release(leg)
        vid = rig.driver.id
        got = [
            *rig.channel.observe(OfferAnswered(vid, T0 + 2, "leg-1", Decision.ACCEPT, None)),
            *rig.channel.observe(
                TripProgressed(
                    vid, T0 + 9, str(leg.mission_id), TripEventKind.DROPPED_OFF, None, None
                )
            ),
        ]
        assert [p.kind for p in got] == [
            K.ACCEPTED, K.TO_PICKUP, K.PICKUP_ARRIVED, K.PICKED_UP,
            K.TO_DROPOFF, K.DROPOFF_ARRIVED, K.DROPPED_OFF, K.FINISHED,
        ]  # fmt: skip

    async def test_a_stray_accept_is_cancelled_at_the_next_tick(self, rig: Rig) -> None:
        progress = rig.channel.observe(
            OfferAnswered(rig.driver.id, T0, "old-offer", Decision.ACCEPT, None)
        )
        assert not progress and not rig.out.cancels
        await rig.channel.tick(T0 + 1)
        (cancel,) = rig.out.cancels
        assert (cancel["offer"], cancel["mission"]) == ("old-offer", None)


class TestAdopt:
    """A trip the phone carries on with through fleetd's restart or a takeover."""

    def status(self, rig: Rig, on_job: bool) -> None:
        state = DriverState(DriverAvailability.BUSY, 80.0, 5.0, on_job, None)
        now = time.time()
        rig.registry.apply_driver_status(rig.driver, state, Heard(now, now))

    async def test_the_phones_next_steps_move_the_adopted_leg_on(self, rig: Rig) -> None:
        self.status(rig, on_job=True)
        leg = rig.leg()
        picked_up = TRIP_STEPS.index(K.PICKED_UP)
        assert rig.channel.adopt(leg, picked_up)
        assert not rig.out.offers  # nothing sent: the driver has the trip
        got = rig.channel.observe(
            TripProgressed(
                rig.driver.id, T0 + 9, str(leg.mission_id), TripEventKind.DROPPED_OFF, None, None
            )
        )
        assert [p.kind for p in got] == [K.TO_DROPOFF, K.DROPOFF_ARRIVED, K.DROPPED_OFF, K.FINISHED]
        assert not await rig.channel.tick(T0 + 10_000)  # never expires like an offer

    async def test_a_driver_on_no_job_is_not_adopted(self, rig: Rig) -> None:
        self.status(rig, on_job=False)
        assert not rig.channel.adopt(rig.leg(), TRIP_STEPS.index(K.PICKED_UP))
        assert len(rig.channel.book) == 0


class TestTick:
    async def test_an_unanswered_offer_expires_and_is_withdrawn(self, rig: Rig) -> None:
        leg = rig.leg()
        await rig.channel.release(leg)
        assert not await rig.channel.tick(T0 + 30.5)
        (p,) = await rig.channel.tick(T0 + 31)
        assert (p.kind, p.failure) == (K.REFUSED, LegFailure.OFFER_EXPIRED)
        (cancel,) = rig.out.cancels
        assert (cancel["offer"], cancel["mission"], cancel["message"]) == (
            "leg-1", str(leg.mission_id), "offer expired",
        )  # fmt: skip

    async def test_a_cancel_is_re_sent_until_acked_then_given_up(self, rig: Rig) -> None:
        leg = rig.leg()
        await rig.channel.withdraw(leg, LegFailure.CANCELLED)
        await rig.channel.tick(T0 + 4)
        assert len(rig.out.cancels) == 1
        await rig.channel.tick(T0 + 5)
        first, again = rig.out.cancels
        assert first["cid"] == again["cid"] and first["message"] == "cancelled"
        await rig.channel.tick(T0 + 10)
        assert len(rig.out.cancels) == 2 and len(rig.channel.acks) == 0  # given up

    async def test_an_ack_stops_the_re_sends(self, rig: Rig) -> None:
        await rig.channel.withdraw(rig.leg(), LegFailure.CANCELLED)
        cid = rig.out.cancels[0]["cid"]
        rig.channel.observe(CommandAcked(rig.driver.id, T0 + 1, cid, AckResult.ACCEPTED, None))
        await rig.channel.tick(T0 + 60)
        assert len(rig.out.cancels) == 1

    async def test_a_driver_gone_offline_fails_its_job_and_hears_of_it_when_back(
        self, rig: Rig
    ) -> None:
        leg = rig.leg()
        await rig.channel.release(leg)
        rig.channel.observe(OfferAnswered(rig.driver.id, T0, "leg-1", Decision.ACCEPT, None))
        rig.connection(ConnectionState.OFFLINE)
        (p,) = await rig.channel.tick(T0 + 1)
        assert (p.kind, p.failure) == (K.FAILED, LegFailure.VEHICLE_OFFLINE)
        assert not rig.out.cancels and len(rig.channel.acks) == 1  # kept for later
        await rig.channel.tick(T0 + 7)
        assert not rig.out.cancels and len(rig.channel.acks) == 1  # still away
        rig.connection(ConnectionState.ONLINE)
        await rig.channel.tick(T0 + 13)
        (cancel,) = rig.out.cancels
        assert cancel["mission"] == str(leg.mission_id)

    async def test_a_driver_with_a_passenger_is_not_told_to_drop_it(self, rig: Rig) -> None:
        leg = rig.leg()
        await rig.channel.release(leg)
        rig.channel.observe(
            TripProgressed(
                rig.driver.id, T0, str(leg.mission_id), TripEventKind.PICKED_UP, None, None
            )
        )
        rig.connection(ConnectionState.OFFLINE)
        (p,) = await rig.channel.tick(T0 + 1)
        assert p.kind is K.FAILED and len(rig.channel.acks) == 0
