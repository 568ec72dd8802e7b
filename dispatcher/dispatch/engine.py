"""The dispatch engine: plans open missions onto vehicles and carries the plan out.

It keeps the open missions (loaded at start, then told about new ones and changes by the
mission intake), each vehicle's released leg and horizon (:class:`Holdings`), and
re-plans on every change, debounced. A new mission gets a quick insertion of its own at
once (:meth:`DispatchEngine.insert_new`: only the new missions and the free vehicles,
never queued behind a full plan); the full plan (:meth:`DispatchEngine.plan_now`) runs off
the event loop under its time limit, and not at all while no vehicle could take a mission.
Only the next leg of a vehicle is released, through the channel of its kind; every
decision and every step of progress is a mission event written through
:class:`~dispatcher.ops.missions.MissionOps` as ``system:dispatch``. What goes wrong is
decided by :mod:`dispatcher.dispatch.recovery`.

All state changes happen on the event loop under one lock, so a progress report, a plan
commit and an operator's cancel never interleave half-way.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace

import structlog

from dispatcher.dispatch import progress as steps
from dispatcher.dispatch.charging import ChargePolicy, RobotNeed, Station, choose_stations
from dispatcher.dispatch.debounce import Debouncer
from dispatcher.dispatch.eligibility import mission_leg, mission_stops, plannable
from dispatcher.dispatch.holdings import Holdings, Released
from dispatcher.dispatch.legs import (
    Leg,
    LegChannel,
    LegFailure,
    LegProgress,
    LegProgressKind,
    Stop,
    StopAction,
)
from dispatcher.dispatch.planning import PlanInputs, Planner
from dispatcher.dispatch.recovery import (
    LostLeg,
    Recovery,
    Resolution,
    choices,
    failure_of,
    recover,
    refusal_event,
)
from dispatcher.dispatch.zone_rules import ZoneRules
from dispatcher.links.commands import CommandOutcome
from dispatcher.links.vehicle_events import VehicleEvent
from dispatcher.metrics import DISPATCH_ALERTS
from dispatcher.missions.domain import Location, MissionRecord, Scope
from dispatcher.missions.lifecycle import MissionEvent, MissionStatus
from dispatcher.ops.caller import Caller
from dispatcher.ops.fleet_access import FleetLookup
from dispatcher.ops.missions import MissionOps, MissionRefused
from fleet.changes import FleetChange
from fleet.model import ChangeKind, VehicleKind
from geo.facility_maps import FacilityMaps

log = structlog.get_logger(__name__)

#: Who the engine's mission events name as their actor.
SYSTEM = Caller.system("dispatch")
OPEN = (MissionStatus.PENDING, MissionStatus.ASSIGNED, MissionStatus.IN_PROGRESS)


class DispatchEngine:
    """One per daemon; :meth:`run` is the supervised task ``fleetd.dispatch``."""

    def __init__(
        self,
        *,
        ops: MissionOps,
        fleet: FleetLookup,
        channels: Mapping[VehicleKind, LegChannel],
        planner: Planner,
        maps: FacilityMaps,
        policy: ChargePolicy,
        stations: Sequence[Station] = (),
        debounce: Debouncer,
        tick_s: float,
        service_s: float = 30.0,
        zones: ZoneRules | None = None,
    ) -> None:
        self._ops = ops
        self._fleet = fleet
        self._channels = dict(channels)
        self._planner = planner
        self._maps = maps
        self._policy = policy
        self._stations = tuple(stations)
        self._debounce = debounce
        self._tick_s = tick_s
        self._service_s = service_s
        self._zones = zones
        #: Missions the zone rules keep out of planning, and why (logged once each).
        self.blocked: dict[uuid.UUID, str] = {}
        self.missions: dict[uuid.UUID, MissionRecord] = {}
        self.holdings = Holdings()
        #: Why a mission lost its vehicle (the ``reassigned`` reason), until re-planned.
        self._lost_reason: dict[uuid.UUID, str] = {}
        #: Vehicles that refused a mission: not offered it again.
        self._refused: dict[uuid.UUID, set[uuid.UUID]] = {}
        #: Held missions an operator asked to reassign: pick up where the rider is.
        self._handover: dict[uuid.UUID, Location] = {}
        self._forced_charge: set[uuid.UUID] = set()
        #: Charge legs the operator asked for: they end full, not at the resume threshold.
        self._forced_legs: set[str] = set()
        self._new: set[uuid.UUID] = set()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        #: Set when :attr:`_new` has missions for the quick insertion.
        self._new_wake = asyncio.Event()
        self._inbox: asyncio.Queue[LegProgress | FleetChange] = asyncio.Queue()
        self._accepting = True
        self.plans = 0
        #: Plans not run because no vehicle could take a mission.
        self.idle_skips = 0
        for kind in VehicleKind:
            if kind not in self._channels:
                log.warning("dispatch.no_channel", kind=kind.value, planned=False)

    # Start and run ------------------------------------------------------------------

    async def load(self) -> int:
        """Load the open missions from Postgres. Missions ``in_progress`` from before a
        restart are held for an operator (where their rider is is not known here)."""
        after = None
        while True:
            page = await self._ops.list(SYSTEM, statuses=OPEN, limit=1000, after=after)
            for m in page.items:
                self.missions[m.id] = m
                if m.status is MissionStatus.IN_PROGRESS:
                    self._hold(m.id, "engine_restart")
                elif m.status is MissionStatus.ASSIGNED:
                    self._lost_reason[m.id] = "engine_restart"
            if page.next_cursor is None:
                break
            after = page.next_cursor
        self._debounce.mark(time.monotonic())
        self._wake.set()
        log.info("dispatch.loaded", missions=len(self.missions))
        return len(self.missions)

    async def run(self) -> None:
        """Plan, apply progress and tick the channels until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._plan_loop(), name="fleetd.dispatch.plan")
            tg.create_task(self._quick_loop(), name="fleetd.dispatch.quick")
            tg.create_task(self._inbox_loop(), name="fleetd.dispatch.inbox")
            tg.create_task(self._tick_loop(), name="fleetd.dispatch.tick")

    async def stop_intake(self) -> None:
        """Shutdown phase 1 (before MQTT closes): no new legs are released from now on."""
        self._accepting = False

    # Inputs (called on the event loop) --------------------------------------------------

    def observe(self, event: VehicleEvent) -> None:
        """A vehicle event: each channel says what it means for its legs."""
        for channel in self._channels.values():
            for p in channel.observe(event):
                self._inbox.put_nowait(p)

    def on_fleet_change(self, change: FleetChange) -> None:
        """The registry's change feed listener (cheap: queues the change)."""
        self._inbox.put_nowait(change)

    def report(self, p: LegProgress) -> None:
        """Progress from elsewhere than :meth:`observe` (tests, the tick)."""
        self._inbox.put_nowait(p)

    def mark(self, *, urgent: bool = False) -> None:
        """Something changed: re-plan soon (``urgent``: at once)."""
        self._debounce.mark(time.monotonic())
        if urgent:
            self._debounce.mark(time.monotonic() - self._debounce.max_wait_s)
        self._wake.set()

    # Mission intake -----------------------------------------------------------------------

    async def mission_created(self, mission_id: uuid.UUID) -> None:
        """A ``created`` event of the stream (a mission made by another process, or one
        :meth:`take_new` already has: then nothing to do)."""
        if mission_id in self.missions:
            return
        found = await self._ops.get(SYSTEM, mission_id)
        if found is None:
            return
        self.take_new(found[0])

    def take_new(self, mission: MissionRecord) -> None:
        """A new mission: planned at once by the quick insertion. Called by the intake,
        and by the API's mission operations in this process as soon as the mission is
        committed (the event stream delivers a row only once every older write
        transaction of the whole cluster has ended, which under load took seconds).

        No lock: these lines run without an await between them, so no holder of the lock
        sees them half done, and a new mission does not queue behind progress reports."""
        if mission.status.is_final or not self._accepting:
            return
        self.missions[mission.id] = mission
        self._new.add(mission.id)
        self._new_wake.set()

    async def mission_changed(self, mission_id: uuid.UUID, event: MissionEvent) -> None:
        """A change made by someone else (operator, API): cancel, priority, resolution."""
        found = await self._ops.get(SYSTEM, mission_id)
        async with self._lock:
            if found is None or found[0].status.is_final:
                await self._finish_mission(mission_id, LegFailure.CANCELLED)
            else:
                self.missions[mission_id] = found[0]
        self.mark(urgent=event is not MissionEvent.PRIORITY_CHANGED)

    async def _finish_mission(self, mission_id: uuid.UUID, why: LegFailure) -> None:
        """Forget a final mission; withdraw its leg if a vehicle still holds it."""
        self.missions.pop(mission_id, None)
        self.holdings.forget_mission(mission_id)
        self._lost_reason.pop(mission_id, None)
        self._refused.pop(mission_id, None)
        self._handover.pop(mission_id, None)
        released = self.holdings.of_mission(mission_id)
        if released is not None:
            self.holdings.release(released.leg.vehicle_id)
            await self._withdraw(released.leg, why)

    # Planning -------------------------------------------------------------------------------

    async def _plan_loop(self) -> None:
        while True:
            due = self._debounce.due_at()
            wait = self._tick_s if due is None else max(0.0, due - time.monotonic())
            try:
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                if due is None:
                    self._debounce.mark(time.monotonic() - self._debounce.max_wait_s)
            self._wake.clear()
            if self._debounce.take(time.monotonic()):
                await self.plan_now()

    async def plan_now(self) -> None:
        """Plan the open missions and release the next legs (one plan at a time).

        Nothing is planned while no vehicle could take a mission (a backlog with no
        vehicle online would otherwise be re-planned on every new mission and tick)."""
        if not self._accepting:
            return
        inputs = self._inputs()  # synchronous: a consistent snapshot without the lock
        if inputs.missions and not inputs.vehicles:
            self.idle_skips += 1
        elif inputs.missions:
            inputs = await self._apply_zone_rules(inputs)
        if inputs.missions and inputs.vehicles:
            plan = await self._planner.plan(inputs, quick=False)
            async with self._lock:
                await self._commit(self._planner.by_vehicle(plan))
            self.plans += 1
        async with self._lock:
            await self._charge_idle_robots()

    async def _quick_loop(self) -> None:
        while True:
            await self._new_wake.wait()
            self._new_wake.clear()
            await self.insert_new()

    async def insert_new(self) -> None:
        """The quick insertion: the new missions onto the free vehicles near them, at
        once (greedy, in a thread); then the full plan improves on it, debounced."""
        if not self._accepting:
            return
        new, self._new = self._new, set()
        inputs = self._inputs(only=new)  # synchronous: a consistent snapshot without the lock
        if inputs.missions and inputs.vehicles:
            inputs = await self._apply_zone_rules(inputs, partial=True)
        if inputs.missions and inputs.vehicles:
            plan = await self._planner.plan(inputs, quick=True)
            async with self._lock:
                await self._commit(self._planner.by_vehicle(plan), partial=True)
            self.plans += 1
        elif new:
            self.idle_skips += 1
        if new:
            self.mark()  # the full optimisation improves the quick plan (or tries again)

    async def _apply_zone_rules(self, inputs: PlanInputs, *, partial: bool = False) -> PlanInputs:
        """Leave out missions whose pickup or drop-off the zones forbid (``partial``:
        ``inputs`` hold some of the open missions only; the others' verdicts stay)."""
        if self._zones is None or not inputs.missions:
            return inputs
        blocked = await self._zones.blocked(inputs.missions)
        for mission_id, why in blocked.items():
            if self.blocked.get(mission_id) != why:
                log.warning("dispatch.mission_blocked", mission_id=str(mission_id), reason=why)
        if partial:
            for m in inputs.missions:
                self.blocked.pop(m.id, None)
            self.blocked.update(blocked)
        else:
            self.blocked = blocked
        kept = tuple(m for m in inputs.missions if m.id not in blocked)
        return replace(inputs, missions=kept)

    def _inputs(self, only: set[uuid.UUID] | None = None) -> PlanInputs:
        """What to plan: every open mission without a leg, or (``only``, the quick
        insertion) those of ``only``, with the free vehicles only."""
        fleet = [
            v
            for v in self._fleet.snapshot()
            if v.kind in self._channels
            and plannable(v, self._policy)
            and v.id not in self._forced_charge
            and not self._charging_leg(v.id)
            and (only is None or self.holdings.is_free(v.id))
        ]
        busy = {vid: r.leg for vid, r in self.holdings.legs.items()} if only is None else {}
        pool = (
            self.missions
            if only is None
            else {i: self.missions[i] for i in only if i in self.missions}
        )
        open_ = [
            m
            for mid, m in pool.items()
            if mid not in self.holdings.by_mission
            and mid not in self.holdings.held
            and not m.status.is_final
        ]
        return PlanInputs(
            vehicles=tuple(fleet),
            busy=busy,
            missions=tuple(open_),
            handover=dict(self._handover),
            refused={k: frozenset(v) for k, v in self._refused.items()},
        )

    def _charging_leg(self, vehicle_id: uuid.UUID) -> bool:
        released = self.holdings.legs.get(vehicle_id)
        return released is not None and released.leg.mission_id is None

    async def _commit(
        self, plan: Mapping[uuid.UUID, tuple[uuid.UUID, ...]], *, partial: bool = False
    ) -> None:
        """Release the first mission of each free vehicle's plan; keep the rest as its
        horizon (``partial``: a quick insertion, which leaves other vehicles' horizons)."""
        if partial:
            self.holdings.horizon.update(plan)
        else:
            self.holdings.horizon = dict(plan)
        for vehicle_id, planned in plan.items():
            if not self._accepting or not self.holdings.is_free(vehicle_id):
                continue
            first = planned[0]
            if first in self.holdings.by_mission or first not in self.missions:
                continue
            horizon = tuple(
                s
                for mid in planned[1:]
                if mid in self.missions
                for s in mission_stops(self.missions[mid], self._service_s)
            )
            await self._release_mission(vehicle_id, self.missions[first], horizon)

    async def _release_mission(
        self, vehicle_id: uuid.UUID, mission: MissionRecord, horizon: tuple[Stop, ...]
    ) -> None:
        view = self._fleet.get(vehicle_id)
        if view is None or view.kind not in self._channels or not plannable(view, self._policy):
            return  # changed while the planner ran: the next plan sees it
        leg = mission_leg(
            mission,
            vehicle_id,
            nodes=self._nodes(mission) if view.kind is VehicleKind.ROBOT else (None, None),
            service_s=self._service_s,
            pickup_at=self._handover.get(mission.id),
            horizon=horizon,
        )
        released = self.holdings.hold(leg)
        if not await self._record_assignment(mission, vehicle_id):
            self.holdings.release(vehicle_id)
            return
        result = await self._channels[view.kind].release(leg)
        if result.outcome is CommandOutcome.DONE and not await self._record_offer(
            mission, vehicle_id, view.kind
        ):
            # Changed meanwhile (an operator's cancel): the offer is taken back.
            self.holdings.release(vehicle_id)
            await self._withdraw(leg, LegFailure.CANCELLED)
            return
        log.info(
            "dispatch.leg_released",
            leg_id=leg.leg_id,
            mission_id=str(mission.id),
            vehicle_id=str(vehicle_id),
            outcome=result.outcome.value,
        )
        if result.outcome is not CommandOutcome.DONE:
            await self._lose(released, LegFailure.NOT_TAKEN, result.detail)

    async def _record_assignment(self, mission: MissionRecord, vehicle_id: uuid.UUID) -> bool:
        """``assigned`` (or ``reassigned`` with the reason), before the leg is released."""
        reason = self._lost_reason.get(mission.id)
        event = MissionEvent.ASSIGNED
        if mission.status is not MissionStatus.PENDING:
            event = MissionEvent.REASSIGNED
            reason = reason or "replanned"
        ok = await self._transition(mission.id, event, vehicle_id, reason=reason)
        if ok:
            self._lost_reason.pop(mission.id, None)
            self._handover.pop(mission.id, None)
        return ok

    async def _record_offer(
        self, mission: MissionRecord, vehicle_id: uuid.UUID, kind: VehicleKind
    ) -> bool:
        """``offered`` for a driver, once the offer is out: the assignment's write and the
        offer's are not both waited for before the driver hears of the job (the lock is
        held throughout, so the driver's answer is applied after this)."""
        if kind is not VehicleKind.DRIVER or mission.status is MissionStatus.IN_PROGRESS:
            return True
        return await self._transition(mission.id, MissionEvent.OFFERED, vehicle_id)

    def _nodes(self, mission: MissionRecord) -> tuple[str | None, str | None]:
        def node(loc: Location) -> str | None:
            if loc.place is None:
                return None
            place = self._maps.place(mission.facility_id, loc.place)
            return None if place is None else place.node_id

        return node(mission.pickup), node(mission.dropoff)

    async def _transition(
        self,
        mission_id: uuid.UUID,
        event: MissionEvent,
        vehicle_id: uuid.UUID | None,
        *,
        reason: str | None = None,
    ) -> bool:
        """Record one event; keeps :attr:`missions` current. False when refused."""
        result = await self._ops.transition(
            SYSTEM,
            mission_id,
            event,
            scope=Scope.everything(),
            vehicle_id=vehicle_id,
            reason=reason,
        )
        if isinstance(result, MissionRefused):
            log.warning(
                "dispatch.transition_refused",
                mission_id=str(mission_id),
                mission_event=event.value,
                reason=result.reason.value,
            )
            found = await self._ops.get(SYSTEM, mission_id)
            if found is None or found[0].status.is_final:
                self.missions.pop(mission_id, None)
            else:
                self.missions[mission_id] = found[0]
            return False
        if result.mission.status.is_final:
            self.missions.pop(mission_id, None)
        else:
            self.missions[mission_id] = result.mission
        return True

    # Progress ----------------------------------------------------------------------------

    async def _inbox_loop(self) -> None:
        while True:
            item = await self._inbox.get()
            async with self._lock:
                if isinstance(item, LegProgress):
                    await self.apply(item)
                else:
                    await self._vehicle_changed(item)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.time()
            for channel in self._channels.values():
                for p in await channel.tick(now):
                    self._inbox.put_nowait(p)

    async def apply(self, p: LegProgress) -> None:
        """Apply one progress report to its leg and mission (caller holds the lock)."""
        released = self.holdings.by_leg_id(p.leg_id)
        if released is None:
            log.info("dispatch.progress_ignored", leg_id=p.leg_id, kind=p.kind.value)
            return
        failure = failure_of(p.kind, p.failure)
        if failure is not None:
            await self._lose(released, failure, p.detail)
            return
        if p.kind is LegProgressKind.ACCEPTED:
            released.accepted = True
            return
        mission_id = released.leg.mission_id
        if mission_id is None:  # a charging trip
            if p.kind is LegProgressKind.FINISHED:
                self.holdings.release(released.leg.vehicle_id)
                self.mark()
            return
        await self._advance(released, mission_id, p.kind)

    async def _advance(
        self, released: Released, mission_id: uuid.UUID, kind: LegProgressKind
    ) -> None:
        mission = self.missions.get(mission_id)
        step = steps.step_of(kind)
        if mission is None or step is None:
            return
        vehicle_id = released.leg.vehicle_id
        for event in steps.events_for(kind, released.reached, mission.status):
            if not await self._transition(mission_id, event, vehicle_id):
                break
        released.reached = max(step, released.reached or 0)
        if kind is LegProgressKind.FINISHED:
            self.holdings.release(vehicle_id)
            self.holdings.forget_mission(mission_id)
            self.missions.pop(mission_id, None)
            self.mark()

    # When things go wrong -----------------------------------------------------------------

    async def _lose(self, released: Released, failure: LegFailure, detail: str = "") -> None:
        """A leg will not be completed: re-plan its mission, or hold it for an operator."""
        leg = released.leg
        self.holdings.release(leg.vehicle_id)
        mission = self.missions.get(leg.mission_id) if leg.mission_id else None
        decision = recover(
            LostLeg(failure, steps.picked_up(released.reached), mission.status if mission else None)
        )
        log.warning(
            "dispatch.leg_lost",
            leg_id=leg.leg_id,
            vehicle_id=str(leg.vehicle_id),
            mission_id=str(leg.mission_id),
            failure=failure.value,
            decision=decision.value,
            detail=detail,
        )
        if mission is None or decision is Recovery.DROP:
            self.mark()
            return
        self._refused.setdefault(mission.id, set()).add(leg.vehicle_id)
        if decision is Recovery.HOLD:
            self._hold(mission.id, failure.value, leg.vehicle_id)
            return
        event = refusal_event(failure)
        if event is not None:
            await self._transition(mission.id, event, leg.vehicle_id, reason=failure.value)
        self._lost_reason[mission.id] = failure.value
        self.mark(urgent=True)

    def _hold(self, mission_id: uuid.UUID, why: str, vehicle_id: uuid.UUID | None = None) -> None:
        self.holdings.held[mission_id] = why
        DISPATCH_ALERTS.labels(reason=why).inc()
        log.error(
            "dispatch.mission_needs_operator",
            mission_id=str(mission_id),
            vehicle_id=str(vehicle_id) if vehicle_id else None,
            reason=why,
        )

    async def _withdraw(self, leg: Leg, why: LegFailure) -> None:
        view = self._fleet.get(leg.vehicle_id)
        channel = self._channels.get(view.kind) if view is not None else None
        if channel is None:
            return
        result = await channel.withdraw(leg, why)
        log.info(
            "dispatch.leg_withdrawn", leg_id=leg.leg_id, why=why.value, outcome=result.outcome.value
        )

    async def _vehicle_changed(self, change: FleetChange) -> None:
        """Offline, fatal error, pause or maintenance: its unstarted work is re-planned."""
        failure = _failure_of_change(change)
        released = self.holdings.legs.get(change.vehicle_id)
        if failure is not None and released is not None:
            if failure is LegFailure.NOT_IN_CONTROL and steps.picked_up(released.reached):
                return  # paused with the rider on board: it carries on when resumed
            # Withdrawn even from an offline vehicle: the channel forgets the leg, and a
            # robot that comes back gets the cancelOrder rather than carrying on.
            await self._withdraw(released.leg, failure)
            await self._lose(released, failure, change.kind.value)
        self.mark()

    # Operator ------------------------------------------------------------------------------

    def resolution_choices(
        self, mission_id: uuid.UUID, status: MissionStatus
    ) -> tuple[Resolution, ...]:
        return choices(status, mission_id in self.holdings.held)

    def held_reason(self, mission_id: uuid.UUID) -> str | None:
        return self.holdings.held.get(mission_id)

    async def reassign_held(self, mission_id: uuid.UUID, at: Location) -> bool:
        """An operator chose ``reassign`` for a held mission: plan a new vehicle to pick
        the rider up at ``at``. False when the mission is not held."""
        async with self._lock:
            if self.holdings.held.pop(mission_id, None) is None:
                return False
            self._handover[mission_id] = at
            self._lost_reason[mission_id] = "operator_reassign"
        self.mark(urgent=True)
        return True

    def request_charge(self, vehicle_id: uuid.UUID) -> bool:
        """The operator's "charge" command: charge at the next free station once free."""
        view = self._fleet.get(vehicle_id)
        if (
            view is None
            or view.kind is not VehicleKind.ROBOT
            or VehicleKind.ROBOT not in self._channels
        ):
            return False
        self._forced_charge.add(vehicle_id)
        self.mark(urgent=True)
        return True

    # Charging -------------------------------------------------------------------------------

    async def _charge_idle_robots(self) -> None:
        channel = self._channels.get(VehicleKind.ROBOT)
        if channel is None or not self._stations or not self._accepting:
            return
        await self._end_charging()
        needs = [
            RobotNeed(
                vehicle_id=v.id,
                facility_id=v.facility_id,
                lat=v.position.lat,
                lon=v.position.lon,
                battery_pct=100.0 if v.battery_pct is None else v.battery_pct,
                busy=not self.holdings.is_free(v.id) or bool(self.holdings.horizon.get(v.id)),
                charging=v.charging,
                forced=v.id in self._forced_charge,
            )
            for v in self._fleet.snapshot()
            if v.kind is VehicleKind.ROBOT and v.online and v.position is not None
        ]
        taken = {
            r.leg.stops[0].place for r in self.holdings.legs.values() if r.leg.mission_id is None
        }
        for vehicle_id, station in choose_stations(
            needs, self._stations, taken, self._policy
        ).items():
            await self._send_to_charge(vehicle_id, station)

    async def _end_charging(self) -> None:
        """Charge legs of robots back above the resume threshold end: withdrawn (the
        channel stops the charging), the station is free, the robot is planned again."""
        for vehicle_id, released in list(self.holdings.legs.items()):
            view = self._fleet.get(vehicle_id)
            if released.leg.mission_id is not None or view is None:
                continue
            battery = view.battery_pct
            forced = released.leg.leg_id in self._forced_legs
            enough = 100.0 if forced else self._policy.resume_above_pct
            if battery is not None and battery >= enough:
                self.holdings.release(vehicle_id)
                self._forced_legs.discard(released.leg.leg_id)
                await self._withdraw(released.leg, LegFailure.CANCELLED)
                log.info("dispatch.charge_ended", vehicle_id=str(vehicle_id), battery=battery)
                self.mark()

    async def _send_to_charge(self, vehicle_id: uuid.UUID, station: Station) -> None:
        stop = Stop(station.name, station.node_id, station.lat, station.lon, StopAction.CHARGE)
        leg = Leg(
            leg_id=f"charge:{vehicle_id}:{uuid.uuid4().hex[:12]}",
            vehicle_id=vehicle_id,
            facility_id=station.facility_id,
            mission_id=None,
            stops=(stop,),
        )
        released = self.holdings.hold(leg)
        if vehicle_id in self._forced_charge:
            self._forced_charge.discard(vehicle_id)
            self._forced_legs.add(leg.leg_id)
        result = await self._channels[VehicleKind.ROBOT].release(leg)
        log.info(
            "dispatch.charge_released",
            vehicle_id=str(vehicle_id),
            station=station.name,
            outcome=result.outcome.value,
        )
        if result.outcome is not CommandOutcome.DONE:
            await self._lose(released, LegFailure.NOT_TAKEN, result.detail)


def _failure_of_change(change: FleetChange) -> LegFailure | None:
    """The leg failure a vehicle change means (None: nothing lost)."""
    if change.kind is ChangeKind.WENT_OFFLINE:
        return LegFailure.VEHICLE_OFFLINE
    if change.kind is ChangeKind.ERROR_RAISED and change.details.get("level") == "FATAL":
        return LegFailure.FATAL_ERROR
    if change.kind is ChangeKind.STATUS_CHANGED:
        to = change.details.get("to")
        if to in ("maintenance", "paused"):
            return LegFailure.NOT_IN_CONTROL
        if to == "error":
            return LegFailure.FATAL_ERROR
    return None
