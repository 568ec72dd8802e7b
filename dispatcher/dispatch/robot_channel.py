"""The robot :class:`~dispatcher.dispatch.legs.LegChannel`: legs as VDA 5050 orders.

``release`` builds the leg's order on the facility's layout from the node the robot last
reported, checks it (:mod:`dispatcher.dispatch.order_rules`) and sends it through the
commander. Orders travel at QoS 0 (VDA 5050 §6.1), so the robot's state echoing the
orderId is the only acknowledgement: ``tick`` re-sends an order not echoed within
``resend_after_s`` and gives up (REFUSED, ``not_taken``) after ``max_sends``. ``observe``
turns the robot's events into leg progress (:mod:`dispatcher.dispatch.robot_legs`).
``withdraw`` sends ``cancelOrder``. When a robot (re)connects the channel asks it for a
state (``stateRequest``) and reconciles: an order it lost is sent again, an order fleetd
does not know (given before fleetd restarted, or by someone else) is reported (logged and
kept in :attr:`RobotLegChannel.unknown_orders`) and cancelled (``cancelOrder``).

Sends to one robot leave in the order they were decided: each send, and the checks that
decide it, runs under that robot's lock (:attr:`RobotLegChannel._sending`). A send awaits
Redis (the header id) before it is published, so two sends to one robot in flight at once
could be published in either order; ``cancelOrder`` cancels whatever order the robot runs,
so a cancel of an old order published after a new order would cancel the new one (and an
old order re-sent after its cancel would run again). So the engine may release legs side
by side, and the channel's tick (which runs beside the engine) may cancel and re-send,
without either overtaking the other at a robot.

A withdrawn order is not gone until the robot says so (VDA 5050 §6.6.3: after
``cancelOrder`` it keeps the orderId with no nodes left, or it reports another order). A
``cancelOrder`` that could not be sent (robot offline, broker away) or that the robot does
not act on is sent again while the robot reports the order running, and
:meth:`RobotLegChannel.releasing` names the missions whose old robot, online, may still
drive them: the engine gives those to no other vehicle until the robot lets go (at most
``max_sends`` cancels; a robot that is offline cannot be asked and does not hold it up).
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from dispatcher.config import Settings
from dispatcher.dispatch.legs import (
    Leg,
    LegFailure,
    LegProgress,
    LegProgressKind,
    Stop,
    StopAction,
)
from dispatcher.dispatch.order_rules import OrderRuleError
from dispatcher.dispatch.robot_actions import DEFAULT_ACTION, ActionMapping, ActionSpec
from dispatcher.dispatch.robot_legs import (
    TERMINAL,
    HeldLeg,
    order_lost,
    progress_of,
)
from dispatcher.dispatch.robot_orders import (
    NoRouteError,
    OrderLayout,
    OrderSettings,
    OrderStop,
    build_order,
    build_update,
)
from dispatcher.facility_layouts import FacilityLayouts
from dispatcher.links.commander import VehicleCommander
from dispatcher.links.commands import CommandReason, CommandResult, VehicleCommand, result
from dispatcher.links.vehicle_events import OrderStateSeen, VehicleEvent
from fleet.record import VehicleRecord
from fleet.registry import FleetRegistry
from geo.layout.cache import RouteGraphs
from geo.layout.graph import VehicleProfile
from geo.layout.zones import NO_ZONES, ZoneSet
from protocols.vda5050.models import Order

log = structlog.get_logger(__name__)

#: (facility id, node id) -> the layout that node belongs to, for the robots' vehicle type.
LayoutLookup = Callable[[uuid.UUID, str], OrderLayout | None]


@dataclass(slots=True)
class Withdrawn:
    """An order fleetd took back from a robot, until the robot has let go of it."""

    order_id: str
    mission_id: uuid.UUID | None
    #: When the last ``cancelOrder`` went out (None: it could not be sent).
    cancel_at: float | None
    cancels: int = 0
    #: The robot's last report showed it still running the order (nodes left).
    running: bool = True


@dataclass(frozen=True, slots=True)
class RobotChannelSettings:
    """Timing of the order hand-shake and how precisely robots must hit nodes."""

    resend_after_s: float = 3.0
    max_sends: int = 3
    deviation_xy_m: float = 0.5
    deviation_theta_rad: float = 0.35


class RobotLegChannel:
    """Carries out legs on VDA 5050 robots (see the module docstring)."""

    def __init__(
        self,
        commander: VehicleCommander,
        registry: FleetRegistry,
        layouts: LayoutLookup,
        map_ids: Mapping[uuid.UUID, str],
        settings: RobotChannelSettings | None = None,
        clock: Callable[[], float] = time.time,
        actions: ActionMapping | None = None,
    ) -> None:
        self._commander = commander
        self._actions = actions or ActionMapping()
        self._registry = registry
        self._layouts = layouts
        self._map_ids = map_ids
        self._cfg = settings or RobotChannelSettings()
        self._clock = clock
        self._held: dict[uuid.UUID, HeldLeg] = {}
        self._online: dict[uuid.UUID, bool] = {}
        #: The last order withdrawn from each robot, until it reports having let go of it.
        self._withdrawn: dict[uuid.UUID, Withdrawn] = {}
        #: vehicle id -> an orderId the robot runs that fleetd did not give it (or forgot).
        self.unknown_orders: dict[uuid.UUID, str] = {}
        #: Robots running an order fleetd does not know: cancelled at the next tick.
        self._to_cancel: list[uuid.UUID] = []
        #: One lock per robot, held around each send to it and the checks deciding it, so
        #: sends leave in the order they were decided (see the module docstring). Taken
        #: first thing by every public method that sends: a caller that decided a send
        #: before another caller's is queued before it (asyncio.Lock is first come, first
        #: served). Never taken twice by one call (not re-entrant): ``_cancel`` and
        #: ``_send_release`` expect it held.
        self._sending: defaultdict[uuid.UUID, asyncio.Lock] = defaultdict(asyncio.Lock)

    def held(self, vehicle_id: uuid.UUID) -> Order | None:
        """The order fleetd holds for a robot (for status pages and tests)."""
        held = self._held.get(vehicle_id)
        return held.order if held is not None else None

    # --- sending ------------------------------------------------------------------------

    async def release(self, leg: Leg) -> CommandResult:
        """Build, check and send ``leg``'s order; on success the channel follows it."""
        async with self._sending[leg.vehicle_id]:
            return await self._send_release(leg)

    async def _send_release(self, leg: Leg) -> CommandResult:
        rec = self._registry.record(leg.vehicle_id)
        order_id = leg.leg_id
        if rec is None:
            return self._refuse(leg, CommandReason.UNKNOWN_VEHICLE, "unknown vehicle")
        built = self._build(rec, leg)
        if isinstance(built, CommandResult):
            return built
        stale = self.unknown_orders.pop(leg.vehicle_id, None)
        old = self._withdrawn.get(leg.vehicle_id)
        if stale is None and old is not None and old.running and old.cancel_at is None:
            stale = old.order_id  # withdrawn while the robot could not be told
        if stale is not None:
            # An order fleetd forgot (a restart) would make the robot refuse this one.
            log.warning("robot's forgotten order cancelled", vehicle=str(rec.id), order=stale)
            await self._cancel(leg.vehicle_id, stale, None)
        sent = await self._commander.send_order(leg.vehicle_id, built)
        if sent.ok:
            kinds = self._actions.kinds(rec.key.manufacturer)
            self._held[leg.vehicle_id] = HeldLeg.of(leg, built, self._clock(), kinds)
            self._online[leg.vehicle_id] = True
            self.unknown_orders.pop(leg.vehicle_id, None)
            log.info("robot order sent", vehicle=str(leg.vehicle_id), order_id=order_id)
        return sent

    def _build(self, rec: VehicleRecord, leg: Leg) -> Order | CommandResult:
        start = rec.last_node_id
        if start is None:
            return self._refuse(
                leg, CommandReason.VEHICLE_OFFLINE, "the robot has not reported a node yet"
            )
        layout = self._layouts(leg.facility_id, start)
        if layout is None:
            return self._refuse(leg, CommandReason.NO_ROUTE, f"node {start!r} is in no layout")
        write = self._writer(rec.key.manufacturer)
        stops = [write(s) for s in leg.stops]
        if any(s.action_type is None for s in stops) or not stops:
            return self._refuse(leg, CommandReason.NO_ROUTE, "a stop has no layout node")
        # The horizon is a preview: it ends before the first stop with no layout node
        # (an unmapped place) rather than costing the robot its leg.
        for s in leg.horizon:
            if s.node_id is None:
                break
            stops.append(write(s))
        pose = rec.map_pose
        map_id = pose.map_id if pose is not None else self._map_ids.get(leg.facility_id, "")
        cfg = OrderSettings(map_id, self._cfg.deviation_xy_m, self._cfg.deviation_theta_rad)
        try:
            return build_order(
                layout,
                cfg,
                order_id=leg.leg_id,
                start_node_id=start,
                stops=stops,
                released_stops=len(leg.stops),
                manufacturer=rec.key.manufacturer,
                serial=rec.key.serial,
            )
        except NoRouteError as exc:
            return self._refuse(leg, CommandReason.NO_ROUTE, str(exc))
        except OrderRuleError as exc:  # a builder bug: say so, send nothing
            log.error("built order breaks a rule", leg=leg.leg_id, error=str(exc))
            return self._refuse(leg, CommandReason.NOT_SUPPORTED, f"invalid order: {exc}")

    def _writer(self, manufacturer: str) -> Callable[[Stop], OrderStop]:
        """Stop -> order stop, with the action as this manufacturer's robots want it."""
        return lambda stop: _order_stop(stop, self._actions.spec(manufacturer, stop.action))

    @staticmethod
    def _refuse(leg: Leg, reason: CommandReason, detail: str) -> CommandResult:
        return result(leg.vehicle_id, VehicleCommand.ORDER, reason, leg.leg_id, detail)

    async def update_horizon(self, leg: Leg, horizon: Sequence[Stop]) -> CommandResult:
        """Replace the horizon of ``leg``'s order by an order update (§6.6.2).

        The update is stitched onto the order's last base node; the base is not touched.
        Until the robot echoes the new orderUpdateId the update is re-sent like an order;
        if it never is, the leg goes on with the old horizon (its base is unaffected).
        """
        async with self._sending[leg.vehicle_id]:
            return await self._send_update(leg, horizon)

    async def _send_update(self, leg: Leg, horizon: Sequence[Stop]) -> CommandResult:
        held = self._held.get(leg.vehicle_id)
        if held is None or held.leg.leg_id != leg.leg_id:
            return self._refuse(leg, CommandReason.NOT_SUPPORTED, "the robot holds no such leg")
        rec = self._registry.record(leg.vehicle_id)
        layout = self._layouts(leg.facility_id, held.order.nodes[0].node_id)
        if rec is None or layout is None:
            return self._refuse(leg, CommandReason.NO_ROUTE, "the leg's layout is gone")
        first = held.order.nodes[0].node_position
        cfg = OrderSettings(
            first.map_id if first is not None else self._map_ids.get(leg.facility_id, ""),
            self._cfg.deviation_xy_m,
            self._cfg.deviation_theta_rad,
        )
        try:
            update = build_update(
                layout,
                cfg,
                held.order,
                stops=[self._writer(rec.key.manufacturer)(s) for s in horizon],
                released_stops=0,
            )
        except OrderRuleError as exc:  # NoRouteError included
            return self._refuse(leg, CommandReason.NO_ROUTE, str(exc))
        sent = await self._commander.send_order(leg.vehicle_id, update)
        if sent.ok:
            held.order, held.sent_at, held.sends = update, self._clock(), 1
            held.update_pending = True
        return sent

    async def withdraw(self, leg: Leg, why: LegFailure) -> CommandResult:
        """Cancel the robot's order (``cancelOrder``) and stop following the leg."""
        async with self._sending[leg.vehicle_id]:
            held = self._held.get(leg.vehicle_id)
            order_id, taken = None, False
            if held is not None and held.leg.leg_id == leg.leg_id:
                del self._held[leg.vehicle_id]
                order_id, taken = held.order_id, held.taken
            log.info("robot order withdrawn", vehicle=str(leg.vehicle_id), leg=leg.leg_id, why=why)
            return await self._cancel(leg.vehicle_id, order_id, leg.mission_id, running=taken)

    async def _cancel(
        self,
        vehicle_id: uuid.UUID,
        order_id: str | None,
        mission_id: uuid.UUID | None,
        *,
        running: bool = True,
    ) -> CommandResult:
        """``cancelOrder``, and follow ``order_id`` (when known) until the robot lets go;
        ``running``: the robot was last seen running it (an order never echoed may never
        have arrived, and holds nothing up until the robot reports it). The caller holds
        the robot's lock."""
        sent = await self._commander.cancel_order(vehicle_id)
        w = self._withdrawn.get(vehicle_id)
        if order_id is not None and (w is None or w.order_id != order_id):
            w = self._withdrawn[vehicle_id] = Withdrawn(order_id, mission_id, None, running=running)
        if w is not None and sent.ok:
            w.cancel_at, w.cancels = self._clock(), w.cancels + 1
        return sent

    def releasing(self) -> frozenset[uuid.UUID]:
        """Missions taken back from a robot that is online and, by its last report, still
        runs their order: no other vehicle may have them yet (see the module docstring)."""
        out = set()
        for vid, w in self._withdrawn.items():
            if w.mission_id is None or not w.running or w.cancels > self._cfg.max_sends:
                continue
            rec = self._registry.record(vid)
            if rec is not None and rec.online:
                out.add(w.mission_id)
        return frozenset(out)

    def forget(self, vehicle_id: uuid.UUID) -> None:
        """Stop following the robot's leg without sending anything (no ``cancelOrder``):
        another daemon dispatches its facility now (leadership lost) and reconciles the
        order the robot runs as a restart would."""
        self._held.pop(vehicle_id, None)
        self._withdrawn.pop(vehicle_id, None)
        self._online.pop(vehicle_id, None)
        self.unknown_orders.pop(vehicle_id, None)
        self._to_cancel = [v for v in self._to_cancel if v != vehicle_id]

    # --- hearing back -------------------------------------------------------------------

    def observe(self, event: VehicleEvent) -> Sequence[LegProgress]:
        """The progress ``event`` means for the leg its robot holds (none: nothing)."""
        held = self._held.get(event.vehicle_id)
        if isinstance(event, OrderStateSeen):
            self._reconcile(held, event)
        if held is None:
            return []
        out = progress_of(held, event)
        if any(p.kind in TERMINAL for p in out):
            self._held.pop(event.vehicle_id, None)
        return out

    def _reconcile(self, held: HeldLeg | None, ev: OrderStateSeen) -> None:
        if held is not None and order_lost(held, ev):
            # The robot restarted or reset: send the order again (tick does it now).
            log.warning("robot lost its order", vehicle=str(ev.vehicle_id), order=held.order_id)
            held.taken, held.sent_at, held.sends = False, -math.inf, 0
        withdrawn = self._withdrawn.get(ev.vehicle_id)
        if withdrawn is not None and not self._still_runs(withdrawn, ev):
            del self._withdrawn[ev.vehicle_id]  # let go: cancelled, finished or replaced
            withdrawn = None
        known = (held is not None and ev.order_id == held.order_id) or withdrawn is not None
        if ev.order_id and not known and ev.node_ids_left:
            if self.unknown_orders.get(ev.vehicle_id) != ev.order_id:
                # Given before a restart of fleetd (whose mission went back to planning),
                # or by someone else: fleetd is the robot's master, so it is cancelled.
                log.warning(
                    "robot runs an order fleetd did not give it: cancelling it",
                    vehicle=str(ev.vehicle_id),
                    order=ev.order_id,
                )
                self._to_cancel.append(ev.vehicle_id)
            self.unknown_orders[ev.vehicle_id] = ev.order_id
        elif known or not ev.node_ids_left:
            self.unknown_orders.pop(ev.vehicle_id, None)

    @staticmethod
    def _still_runs(w: Withdrawn, ev: OrderStateSeen) -> bool:
        """Whether the robot still runs withdrawn order ``w`` (nodes of it left)."""
        w.running = ev.order_id == w.order_id and bool(ev.node_ids_left)
        return w.running

    async def tick(self, now: float) -> Sequence[LegProgress]:
        """Re-send orders not yet echoed; give up after ``max_sends``; resync reconnects."""
        out: list[LegProgress] = []
        for vid in list(self._held):
            async with self._sending[vid]:
                out += await self._resend(vid, now)
        await self._resync_reconnected()
        await self._cancel_unknown()
        await self._cancel_withdrawn_again(now)
        return out

    async def _resend(self, vid: uuid.UUID, now: float) -> list[LegProgress]:
        """Re-send the robot's order (or order update) if due, or give up on it; under the
        robot's lock, so looked up again here (withdrawn or replaced meanwhile: not sent)."""
        held = self._held.get(vid)
        if held is None:
            return []
        waiting = held.update_pending or not held.taken
        if not waiting or now - held.sent_at < self._cfg.resend_after_s:
            return []
        if held.sends >= self._cfg.max_sends and held.update_pending:
            log.warning("robot never took the order update", order=held.order_id)
            held.update_pending = False
            return []
        if held.sends >= self._cfg.max_sends:
            del self._held[vid]
            return list(
                held.progress(
                    LegProgressKind.REFUSED,
                    now,
                    LegFailure.NOT_TAKEN,
                    f"order not echoed after {held.sends} sends",
                )
            )
        sent = await self._commander.send_order(vid, held.order)
        if sent.ok:
            held.sends += 1
        held.sent_at = now
        return []

    async def _cancel_withdrawn_again(self, now: float) -> None:
        """``cancelOrder`` again to each online robot still running an order taken back
        from it (the cancel could not be sent, was lost, or the robot came back with the
        order), every ``resend_after_s``, ``max_sends`` times at most."""
        for vid in list(self._withdrawn):
            async with self._sending[vid]:
                await self._cancel_again(vid, now)

    async def _cancel_again(self, vid: uuid.UUID, now: float) -> None:
        """One robot of :meth:`_cancel_withdrawn_again`, under its lock (so looked up again:
        given a new order meanwhile, the cancel would take that one away)."""
        w = self._withdrawn.get(vid)
        if w is None or not w.running or vid in self._held or w.cancels > self._cfg.max_sends:
            return
        if w.cancel_at is not None and now - w.cancel_at < self._cfg.resend_after_s:
            return
        rec = self._registry.record(vid)
        if rec is None or not rec.online:
            return
        log.warning(
            "robot still runs a withdrawn order: cancelling it again",
            vehicle=str(vid),
            order=w.order_id,
            cancels=w.cancels,
        )
        await self._cancel(vid, w.order_id, w.mission_id)
        if w.cancels > self._cfg.max_sends:
            log.error(
                "robot does not let go of a withdrawn order",
                vehicle=str(vid),
                order=w.order_id,
            )

    async def _cancel_unknown(self) -> None:
        """``cancelOrder`` to each robot found running an order fleetd does not know (once
        per such order; not while fleetd has given it a leg since)."""
        queued, self._to_cancel = self._to_cancel, []
        for vid in queued:
            async with self._sending[vid]:
                # Looked up under the lock: a leg released meanwhile has an order the
                # cancel would take away (the release cancelled the unknown one first).
                if vid in self._held or vid not in self.unknown_orders:
                    continue
                sent = await self._commander.cancel_order(vid)
            log.info("unknown robot order cancelled", vehicle=str(vid), outcome=sent.outcome.value)

    async def _resync_reconnected(self) -> None:
        """Ask every robot that holds a leg and just came (back) online for its state."""
        for vid in list(self._held):
            rec = self._registry.record(vid)
            online = rec is not None and rec.online
            if online and not self._online.get(vid, True):
                await self._commander.command(vid, VehicleCommand.STATE_REQUEST)
            self._online[vid] = online


def _order_stop(stop: Stop, action: ActionSpec) -> OrderStop:
    if not stop.node_id:
        return OrderStop("", None)
    return OrderStop(stop.node_id, action.action_type, parameters=action.parameters)


class FacilityOrderLayouts:
    """The :data:`LayoutLookup` over the facilities' LIF documents, graphs cached."""

    def __init__(
        self,
        facilities: Mapping[uuid.UUID, FacilityLayouts],
        vehicle_type_id: str | None = None,
        max_speed_mps: float = 1.5,
        zones: Callable[[uuid.UUID], ZoneSet] | None = None,
    ) -> None:
        self._facilities = facilities
        self._vehicle_type = vehicle_type_id
        self._speed = max_speed_mps
        self._graphs = RouteGraphs()
        #: The operators' no-go and slow zones per facility (:mod:`dispatcher.route_zones`):
        #: part of the graph cache key, so a changed zone set routes on a new graph.
        self._zones = zones or (lambda _facility: NO_ZONES)

    def __call__(self, facility_id: uuid.UUID, node_id: str) -> OrderLayout | None:
        """The layout holding ``node_id`` in the facility, routed for the robots' type."""
        loaded = self._facilities.get(facility_id)
        if loaded is None:
            return None
        for doc in loaded.documents:
            if node_id not in doc.nodes:
                continue
            types = sorted(doc.vehicle_types())
            vt = self._vehicle_type or (types[0] if len(types) == 1 else None)
            if vt is None:
                log.error("layout has several vehicle types: configure one", types=types)
                return None
            profile = VehicleProfile(vt, self._speed)
            graph = self._graphs.graph(doc, profile, self._zones(facility_id))
            return OrderLayout(doc, vt, graph)
        return None


def robot_channel(
    settings: Settings,
    commander: VehicleCommander,
    registry: FleetRegistry,
    layouts: Mapping[str, FacilityLayouts],
    channel_settings: RobotChannelSettings | None = None,
    zones: Callable[[uuid.UUID], ZoneSet] | None = None,
) -> RobotLegChannel:
    """The robot channel as the daemon builds it: layouts keyed by facility key, routed
    around the facilities' ``zones`` (no-go and slow, :mod:`dispatcher.route_zones`)."""
    by_id = {f.id: layouts[f.key] for f in settings.effective_facilities if f.key in layouts}
    maps = {f.id: f.maps[0].map_id for f in settings.effective_facilities if f.maps}
    return RobotLegChannel(
        commander,
        registry,
        FacilityOrderLayouts(by_id, zones=zones),
        maps,
        channel_settings,
        actions=action_mapping(settings),
    )


def action_mapping(settings: Settings) -> ActionMapping:
    """``[dispatch.robot_actions]`` as the channel reads it."""
    return ActionMapping(
        {
            manufacturer: {
                StopAction(stop): ActionSpec(
                    a.action_type or DEFAULT_ACTION[StopAction(stop)],
                    tuple(a.parameters.items()),
                )
                for stop, a in by_stop.items()
            }
            for manufacturer, by_stop in settings.dispatch.robot_actions.items()
        }
    )
