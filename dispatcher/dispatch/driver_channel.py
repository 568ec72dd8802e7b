"""The driver :class:`~dispatcher.dispatch.legs.LegChannel`: legs become job offers.

``release`` offers a leg to its driver (``offer``, open for ``offer_timeout_s``);
``observe`` turns the driver's answer, trip events and command acks into
:class:`~dispatcher.dispatch.legs.LegProgress` (the rules are the pure
:class:`~dispatcher.dispatch.driver_offers.OfferBook`); ``tick`` expires unanswered
offers, notices drivers gone offline, and sends (and re-sends, until acknowledged) the
``cancel_job`` commands that take a job back; ``withdraw`` is the engine taking a leg
back. The protocol side is documented in docs/protocols/driver.md, "Offers and trips".
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import structlog

from dispatcher.config import DispatchSettings, Settings
from dispatcher.dispatch.driver_acks import AckTracker, AckVerdict, PendingCommand
from dispatcher.dispatch.driver_offers import (
    TRIP_STEPS,
    CancelNotice,
    HeldLeg,
    OfferBook,
    Outcome,
    offer_id_for,
)
from dispatcher.dispatch.legs import (
    Leg,
    LegChannel,
    LegFailure,
    LegProgress,
    LegProgressKind,
    StopAction,
)
from dispatcher.links.assembly import VehicleLinks
from dispatcher.links.commands import CommandReason, CommandResult, VehicleCommand
from dispatcher.links.outbox import finish
from dispatcher.links.vehicle_events import (
    CommandAcked,
    OfferAnswered,
    TripProgressed,
    VehicleEvent,
)
from dispatcher.metrics import DRIVER_COMMAND_ACKS, DRIVER_EVENTS_IGNORED
from fleet.model import VehicleKind
from fleet.record import VehicleRecord
from fleet.registry import FleetRegistry
from protocols.driver import codec
from protocols.driver.models import JobOffer, Place, Priority

log = structlog.get_logger(__name__)

_PICKED_UP = TRIP_STEPS.index(LegProgressKind.PICKED_UP)


class DriverOutbound(Protocol):
    """What the channel sends through (:class:`~dispatcher.links.driver.DriverVehicles`)."""

    async def offer_job(self, rec: VehicleRecord, offer: JobOffer) -> CommandResult: ...

    async def cancel_job(
        self,
        rec: VehicleRecord,
        correlation_id: str,
        *,
        mission_id: str | None,
        offer_id: str | None,
        message: str | None = None,
    ) -> CommandResult: ...


@dataclass(frozen=True, slots=True)
class DriverChannelOptions:
    """Timing of offers and of command re-sends (``[dispatch]`` in the settings)."""

    offer_timeout_s: float = 30.0
    #: An answer may be in flight when the offer expires; it still counts this long after.
    offer_grace_s: float = 1.0
    ack_timeout_s: float = 5.0
    max_sends: int = 4
    #: A command that cannot be sent (driver offline) is tried again this long.
    hold_s: float = 600.0

    @classmethod
    def from_settings(cls, settings: DispatchSettings) -> DriverChannelOptions:
        """The options the settings give (the rest at their defaults)."""
        return cls(
            offer_timeout_s=settings.offer_timeout_s,
            ack_timeout_s=settings.command_ack_timeout_s,
            max_sends=settings.command_max_sends,
        )


class DriverLegChannel:
    """Carries out legs with human drivers through the driver protocol."""

    def __init__(
        self,
        registry: FleetRegistry,
        outbound: DriverOutbound,
        options: DriverChannelOptions | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock``: wall-clock seconds, the same clock as the ``now`` given to :meth:`tick`."""
        self._registry = registry
        self._out = outbound
        self._opts = options or DriverChannelOptions()
        self._clock = clock
        self.book = OfferBook(grace_s=self._opts.offer_grace_s)
        self.acks = AckTracker(
            ack_timeout_s=self._opts.ack_timeout_s,
            max_sends=self._opts.max_sends,
            hold_s=self._opts.hold_s,
        )
        #: cancel_job commands decided in :meth:`observe` (which may not send), for tick.
        self._queued: list[CancelNotice] = []

    async def release(self, leg: Leg) -> CommandResult:
        """Offer ``leg`` to its driver, open for ``offer_timeout_s``."""
        offer_id = offer_id_for(leg.leg_id)
        target = self._driver(leg.vehicle_id, VehicleCommand.OFFER, offer_id)
        if isinstance(target, CommandResult):
            return target
        now = self._clock()
        expires_at = now + self._opts.offer_timeout_s
        try:
            offer = _offer(leg, offer_id, target.key.serial, now, expires_at)
        except ValueError as exc:  # not a pickup-and-dropoff leg, or values off the protocol
            return finish(
                leg.vehicle_id,
                VehicleCommand.OFFER,
                CommandReason.NOT_SUPPORTED,
                offer_id,
                str(exc),
            )
        # Held before the send, so an answer can never arrive for an offer not yet held.
        self.book.offered(leg, expires_at)
        res = await self._out.offer_job(target, offer)
        if not res.ok:
            self.book.drop(leg.leg_id)
        return res

    def adopt(self, leg: Leg, reached: int) -> bool:
        """Carry on with a trip the driver was given before a restart or a takeover, the
        rider on board (``reached``: the last trip step the mission's timeline records):
        no offer is sent; the phone's trip events move the leg on as before. False (and
        nothing held) unless the driver is online and its status names a job."""
        rec = self._registry.record(leg.vehicle_id)
        if rec is None or not rec.online or not rec.working or leg.mission_id is None:
            return False
        self.book.adopt(leg, reached)
        log.info(
            "driver.trip_adopted",
            vehicle_id=str(leg.vehicle_id),
            mission_id=str(leg.mission_id),
            step=TRIP_STEPS[reached].value if 0 <= reached < len(TRIP_STEPS) else reached,
        )
        return True

    def releasing(self) -> frozenset[uuid.UUID]:
        """None: a driver's job ends with the cancel (the phone acks it; the driver is told
        on the phone and stops), so no mission waits for a driver to let go."""
        return frozenset()

    async def withdraw(self, leg: Leg, why: LegFailure) -> CommandResult:
        """Take ``leg`` back: ``cancel_job`` naming its mission and offer, re-sent until acked."""
        self.book.drop(leg.leg_id)
        mission = str(leg.mission_id) if leg.mission_id is not None else None
        notice = CancelNotice(leg.vehicle_id, mission, offer_id_for(leg.leg_id), why.value)
        return await self._send_cancel(notice, uuid.uuid4().hex, self._clock())

    def observe(self, event: VehicleEvent) -> Sequence[LegProgress]:
        """What a driver's answer, trip event or command ack means for the legs held."""
        if isinstance(event, OfferAnswered):
            return self._apply(self.book.answer(event), event.vehicle_id)
        if isinstance(event, TripProgressed):
            return self._apply(self.book.trip(event), event.vehicle_id)
        if isinstance(event, CommandAcked):
            self._acked(event)
        return ()

    async def tick(self, now: float) -> Sequence[LegProgress]:
        """Drivers gone offline, offers expired; then the cancel_job sends and re-sends due."""
        progress = list(self._offline(now))
        progress.extend(self._apply(self.book.expire(now), None))
        queued, self._queued = self._queued, []
        for notice in queued:
            await self._send_cancel(notice, uuid.uuid4().hex, now)
        again, gave_up = self.acks.due(now)
        for cmd in again:
            rec = self._registry.record(cmd.notice.vehicle_id)
            if rec is not None and not rec.online:
                # Waiting for the driver to come back: no send, no log line every few seconds.
                self.acks.sent(cmd.correlation_id, cmd.notice, now, ok=False)
                continue
            await self._send_cancel(cmd.notice, cmd.correlation_id, now)
        for cmd in gave_up:
            self._gave_up(cmd, now)
        return progress

    def forget(self, vehicle_id: uuid.UUID) -> None:
        """Drop the driver's offers, trips and pending commands without sending anything:
        another daemon dispatches its facility now (leadership lost)."""
        for held in self.book.held():
            if held.leg.vehicle_id == vehicle_id:
                self.book.drop(held.leg.leg_id)
        self.acks.forget_vehicle(vehicle_id)
        self._queued = [n for n in self._queued if n.vehicle_id != vehicle_id]

    # --- internals --------------------------------------------------------------------

    def _offline(self, now: float) -> Sequence[LegProgress]:
        """Legs of drivers no longer online. One that had not picked up yet is also told to
        drop the job when it is back (the mission goes to someone else); one carrying a
        passenger is not: an operator decides what becomes of that mission."""
        gone: dict[uuid.UUID, list[HeldLeg]] = {}
        for held in self.book.held():
            rec = self._registry.record(held.leg.vehicle_id)
            if rec is None or not rec.online:
                gone.setdefault(held.leg.vehicle_id, []).append(held)
        if not gone:
            return ()
        for legs in gone.values():
            for held in legs:
                if held.step < _PICKED_UP:
                    self._queued.append(
                        CancelNotice(
                            held.leg.vehicle_id, held.mission_key, held.offer_id, "driver offline"
                        )
                    )
        return self._apply(self.book.lost(gone, now), None)

    def _apply(self, outcome: Outcome, vehicle_id: uuid.UUID | None) -> Sequence[LegProgress]:
        if outcome.ignored is not None:
            DRIVER_EVENTS_IGNORED.labels(outcome.ignored.value).inc()
            log.info(
                "driver.event_ignored",
                reason=outcome.ignored.value,
                vehicle_id=str(vehicle_id),
                detail=outcome.detail,
            )
        self._queued.extend(outcome.cancels)
        return outcome.progress

    def _acked(self, ev: CommandAcked) -> None:
        verdict, cmd = self.acks.acked(ev)
        if cmd is None:
            return  # an operator's command, or a repeat: not this channel's to track
        DRIVER_COMMAND_ACKS.labels(verdict.value).inc()
        if verdict is AckVerdict.REJECTED:
            log.warning(
                "driver.command_rejected",
                vehicle_id=str(ev.vehicle_id),
                correlation_id=ev.correlation_id,
                mission_id=cmd.notice.mission_id,
                offer_id=cmd.notice.offer_id,
                reason=ev.reason,
            )

    def _gave_up(self, cmd: PendingCommand, now: float) -> None:
        DRIVER_COMMAND_ACKS.labels("unacked").inc()
        log.warning(
            "driver.command_unacked",
            vehicle_id=str(cmd.notice.vehicle_id),
            correlation_id=cmd.correlation_id,
            mission_id=cmd.notice.mission_id,
            offer_id=cmd.notice.offer_id,
            sends=cmd.sends,
            waited_s=round(now - cmd.created_at, 1),
        )

    async def _send_cancel(
        self, notice: CancelNotice, correlation_id: str, now: float
    ) -> CommandResult:
        target = self._driver(notice.vehicle_id, VehicleCommand.CANCEL_ORDER, correlation_id)
        if isinstance(target, CommandResult):
            res = target
        else:
            res = await self._out.cancel_job(
                target,
                correlation_id,
                mission_id=notice.mission_id,
                offer_id=notice.offer_id,
                message=notice.message[:500],
            )
        if (
            res.reason is not CommandReason.UNKNOWN_VEHICLE
            and res.reason is not CommandReason.NOT_SUPPORTED
        ):
            self.acks.sent(correlation_id, notice, now, ok=res.ok)
        return res

    def _driver(
        self, vehicle_id: uuid.UUID, command: VehicleCommand, correlation_id: str
    ) -> VehicleRecord | CommandResult:
        """The driver's record, or the result refusing the command (as the commander does)."""
        rec = self._registry.record(vehicle_id)
        if rec is None:
            reason, detail = CommandReason.UNKNOWN_VEHICLE, "unknown vehicle"
        elif rec.key.kind is not VehicleKind.DRIVER:
            reason, detail = CommandReason.NOT_SUPPORTED, f"not a driver: {rec.key.kind.value}"
        elif not rec.online:
            reason, detail = CommandReason.VEHICLE_OFFLINE, "vehicle is offline"
        else:
            return rec
        return finish(vehicle_id, command, reason, correlation_id, detail)


def _offer(leg: Leg, offer_id: str, driver_id: str, now: float, expires_at: float) -> JobOffer:
    """The ``offer`` message of a pickup-and-dropoff leg; ValueError for any other leg."""
    if leg.mission_id is None:
        raise ValueError("drivers are offered missions, not charging trips")
    actions = tuple(s.action for s in leg.stops)
    if actions != (StopAction.PICK, StopAction.DROP):
        raise ValueError(
            f"a driver leg is a pickup then a dropoff, not {[a.value for a in actions]}"
        )
    pickup, dropoff = (
        Place(name=(s.place or s.action.value)[:128], lat=s.lat, lon=s.lon) for s in leg.stops
    )
    return codec.make_offer(
        0,  # the adapter numbers it
        driver_id,
        offer_id=offer_id,
        mission_id=str(leg.mission_id),
        pickup=pickup,
        dropoff=dropoff,
        expires_at=datetime.fromtimestamp(expires_at, UTC),
        priority=_PRIORITIES.get(leg.priority, Priority.NORMAL),
        notes=leg.notes[:1000] if leg.notes else None,
        now=datetime.fromtimestamp(now, UTC),
    )


_PRIORITIES = {p.value: p for p in Priority}


def driver_channel(
    settings: Settings, registry: FleetRegistry, links: VehicleLinks
) -> DriverLegChannel:
    """The driver channel the daemon runs, over its registry and vehicle links."""
    return DriverLegChannel(
        registry, links.driver, DriverChannelOptions.from_settings(settings.dispatch)
    )


if TYPE_CHECKING:

    def _is_a_leg_channel(channel: DriverLegChannel) -> LegChannel:
        """mypy checks here that the driver channel keeps to the engine's contract."""
        return channel
