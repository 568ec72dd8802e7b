"""The driver side of a leg as a state machine: offer, answer, trip, expiry (pure: no I/O).

A leg released to a driver is first an *offer* (open until its expiry), then, once
accepted, a *trip* whose steps the phone reports. :class:`OfferBook` holds the legs the
driver channel has out and turns each driver event into :class:`LegProgress`; the edge
(:mod:`dispatcher.dispatch.driver_channel`) sends and receives, this module decides.

Rules (docs/protocols/driver.md, "Offers and trips"):

- an answer for an offer the book does not hold (unknown, already answered, expired,
  withdrawn, or from another driver) is ignored and counted, never an error; a late
  *accept* is also answered with a ``cancel_job``, so the driver does not drive for a job
  fleetd gave to someone else;
- trip steps only move forwards; a step the phone skipped is implied (an app that does not
  send ``to_pickup`` still yields TO_PICKUP before PICKUP_ARRIVED), a step repeated or
  out of order is ignored and counted; a trip event for an offer still open implies the
  acceptance (answers and trip events travel on different topics);
- an offer unanswered ``grace_s`` after its expiry is REFUSED ``offer_expired``;
- a driver that is offline: an open offer is REFUSED, an accepted leg FAILED, both
  ``vehicle_offline``.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from dispatcher.dispatch.legs import Leg, LegFailure, LegProgress, LegProgressKind
from dispatcher.links.vehicle_events import OfferAnswered, TripProgressed
from protocols.driver.models import Decision, TripEventKind

#: The trip steps in the order they happen; a reported step implies those before it.
TRIP_STEPS: tuple[LegProgressKind, ...] = (
    LegProgressKind.TO_PICKUP,
    LegProgressKind.PICKUP_ARRIVED,
    LegProgressKind.PICKED_UP,
    LegProgressKind.TO_DROPOFF,
    LegProgressKind.DROPOFF_ARRIVED,
    LegProgressKind.DROPPED_OFF,
)
_STEP_OF_EVENT: dict[TripEventKind, LegProgressKind] = {
    TripEventKind.TO_PICKUP: LegProgressKind.TO_PICKUP,
    TripEventKind.ARRIVED_PICKUP: LegProgressKind.PICKUP_ARRIVED,
    TripEventKind.PICKED_UP: LegProgressKind.PICKED_UP,
    TripEventKind.TO_DROPOFF: LegProgressKind.TO_DROPOFF,
    TripEventKind.ARRIVED_DROPOFF: LegProgressKind.DROPOFF_ARRIVED,
    TripEventKind.DROPPED_OFF: LegProgressKind.DROPPED_OFF,
}
_IDENT = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class Ignored(StrEnum):
    """Why a driver event changed nothing (the label of the edge's counter)."""

    UNKNOWN_OFFER = "unknown_offer"  # no open offer with that id (late, withdrawn, made up)
    WRONG_DRIVER = "wrong_driver"  # the offer was made to another driver
    UNKNOWN_TRIP = "unknown_trip"  # no leg of this driver for that mission
    STALE_STEP = "stale_step"  # a trip step already reported, or out of order
    PROBLEM = "problem"  # a ``problem`` trip event: logged, no progress of its own


def offer_id_for(leg_id: str) -> str:
    """The offer id of a leg: the leg id when it fits the protocol's id alphabet, else a
    stable digest of it (the same leg always gets the same offer id)."""
    if _IDENT.fullmatch(leg_id):
        return leg_id
    return "leg-" + hashlib.sha256(leg_id.encode()).hexdigest()[:32]


class Phase(StrEnum):
    OFFERED = "offered"
    ACCEPTED = "accepted"


@dataclass(slots=True)
class HeldLeg:
    """A leg the channel has out with a driver."""

    leg: Leg
    offer_id: str
    expires_at: float
    phase: Phase = Phase.OFFERED
    #: Index in :data:`TRIP_STEPS` of the last step reported (-1: none yet).
    step: int = -1

    @property
    def mission_key(self) -> str:
        """The mission id as the wire writes it (``missionId``)."""
        return str(self.leg.mission_id)


@dataclass(frozen=True, slots=True)
class CancelNotice:
    """A ``cancel_job`` the edge must send (an offer withdrawn, a late accept refused)."""

    vehicle_id: uuid.UUID
    mission_id: str | None  # None: a late accept for an offer the book never held
    offer_id: str
    message: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one event or one tick meant: progress for the engine, and follow-ups."""

    progress: tuple[LegProgress, ...] = ()
    cancels: tuple[CancelNotice, ...] = ()
    ignored: Ignored | None = None
    detail: str = ""


@dataclass(slots=True)
class OfferBook:
    """The driver legs out, by leg id, with the rules above."""

    grace_s: float = 1.0
    _legs: dict[str, HeldLeg] = field(default_factory=dict)
    _by_offer: dict[str, str] = field(default_factory=dict)
    #: (driver, missionId as on the wire) -> leg id: where a trip event belongs.
    _by_trip: dict[tuple[uuid.UUID, str], str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._legs)

    def get(self, leg_id: str) -> HeldLeg | None:
        """The held leg with that id, if any."""
        return self._legs.get(leg_id)

    def held(self) -> tuple[HeldLeg, ...]:
        """Every leg out, offered or accepted."""
        return tuple(self._legs.values())

    def offered(self, leg: Leg, expires_at: float) -> HeldLeg:
        """Record that ``leg`` was offered to its driver until ``expires_at``."""
        self.drop(leg.leg_id)
        held = HeldLeg(leg, offer_id_for(leg.leg_id), expires_at)
        self._legs[leg.leg_id] = held
        self._by_offer[held.offer_id] = leg.leg_id
        self._by_trip[(leg.vehicle_id, held.mission_key)] = leg.leg_id
        return held

    def adopt(self, leg: Leg, step: int) -> HeldLeg:
        """Record a trip the driver is already on, accepted and at ``step`` (an index in
        :data:`TRIP_STEPS`): after a restart or a takeover the phone carries on with the
        trip, and its events find the leg by driver and mission as before."""
        held = self.offered(leg, math.inf)
        held.phase = Phase.ACCEPTED
        held.step = step
        return held

    def drop(self, leg_id: str) -> HeldLeg | None:
        """Forget a leg (finished, refused, failed or withdrawn); the held leg, if any."""
        held = self._legs.pop(leg_id, None)
        if held is not None:
            self._by_offer.pop(held.offer_id, None)
            if self._by_trip.get(key := (held.leg.vehicle_id, held.mission_key)) == leg_id:
                del self._by_trip[key]
        return held

    def answer(self, ev: OfferAnswered) -> Outcome:
        """A driver's accept or decline."""
        leg_id = self._by_offer.get(ev.offer_id)
        held = self._legs.get(leg_id) if leg_id is not None else None
        if held is None or held.phase is not Phase.OFFERED:
            return self._stray_answer(ev, Ignored.UNKNOWN_OFFER)
        if held.leg.vehicle_id != ev.vehicle_id:
            return self._stray_answer(ev, Ignored.WRONG_DRIVER)
        if ev.decision is Decision.DECLINE:
            self.drop(held.leg.leg_id)
            reason = ev.reason or "declined"
            return Outcome(
                (_progress(held, LegProgressKind.REFUSED, ev.at, LegFailure.DECLINED, reason),)
            )
        held.phase = Phase.ACCEPTED
        return Outcome((_progress(held, LegProgressKind.ACCEPTED, ev.at),))

    def trip(self, ev: TripProgressed) -> Outcome:
        """A driver's trip event, with the steps it implies."""
        leg_id = self._by_trip.get((ev.vehicle_id, ev.mission_id))
        held = self._legs.get(leg_id) if leg_id is not None else None
        if held is None:
            return Outcome(ignored=Ignored.UNKNOWN_TRIP, detail=f"mission {ev.mission_id}")
        step = _STEP_OF_EVENT.get(ev.event)
        if step is None:
            return Outcome(ignored=Ignored.PROBLEM, detail=f"mission {ev.mission_id}")
        index = TRIP_STEPS.index(step)
        if index <= held.step:
            return Outcome(
                ignored=Ignored.STALE_STEP, detail=f"{ev.event.value} after step {held.step}"
            )
        progress: list[LegProgress] = []
        if held.phase is Phase.OFFERED:
            held.phase = Phase.ACCEPTED
            progress.append(
                _progress(held, LegProgressKind.ACCEPTED, ev.at, detail="implied by trip")
            )
        progress.extend(_progress(held, k, ev.at) for k in TRIP_STEPS[held.step + 1 : index + 1])
        held.step = index
        if step is LegProgressKind.DROPPED_OFF:
            progress.append(_progress(held, LegProgressKind.FINISHED, ev.at))
            self.drop(held.leg.leg_id)
        return Outcome(tuple(progress))

    def expire(self, now: float) -> Outcome:
        """Offers unanswered past their expiry (plus grace): refused, and withdrawn."""
        due = [
            h
            for h in self._legs.values()
            if h.phase is Phase.OFFERED and now >= h.expires_at + self.grace_s
        ]
        progress, cancels = [], []
        for held in due:
            self.drop(held.leg.leg_id)
            progress.append(
                _progress(held, LegProgressKind.REFUSED, now, LegFailure.OFFER_EXPIRED, "no answer")
            )
            cancels.append(_cancel(held.leg.vehicle_id, held, "offer expired"))
        return Outcome(tuple(progress), tuple(cancels))

    def lost(self, offline: Iterable[uuid.UUID], now: float) -> Outcome:
        """Legs of drivers that went offline: open offers refused, accepted legs failed."""
        gone = set(offline)
        progress = []
        for held in [h for h in self._legs.values() if h.leg.vehicle_id in gone]:
            self.drop(held.leg.leg_id)
            kind = (
                LegProgressKind.REFUSED if held.phase is Phase.OFFERED else LegProgressKind.FAILED
            )
            progress.append(
                _progress(held, kind, now, LegFailure.VEHICLE_OFFLINE, "driver offline")
            )
        return Outcome(tuple(progress))

    def _stray_answer(self, ev: OfferAnswered, why: Ignored) -> Outcome:
        """An answer the book cannot use; a stray *accept* still gets a cancel_job, unless
        the driver already holds the leg (a repeated accept)."""
        detail = f"offer {ev.offer_id}"
        if ev.decision is not Decision.ACCEPT:
            return Outcome(ignored=why, detail=detail)
        leg_id = self._by_offer.get(ev.offer_id)
        held = self._legs.get(leg_id) if leg_id is not None else None
        if held is not None and held.leg.vehicle_id == ev.vehicle_id:
            return Outcome(ignored=why, detail=detail)
        mission = held.mission_key if held is not None else None
        notice = CancelNotice(ev.vehicle_id, mission, ev.offer_id, "offer no longer open")
        return Outcome(cancels=(notice,), ignored=why, detail=detail)


def _progress(
    held: HeldLeg,
    kind: LegProgressKind,
    at: float,
    failure: LegFailure | None = None,
    detail: str = "",
) -> LegProgress:
    leg = held.leg
    return LegProgress(leg.leg_id, leg.vehicle_id, leg.mission_id, kind, at, failure, detail)


def _cancel(vehicle_id: uuid.UUID, held: HeldLeg, message: str) -> CancelNotice:
    return CancelNotice(vehicle_id, held.mission_key, held.offer_id, message)
