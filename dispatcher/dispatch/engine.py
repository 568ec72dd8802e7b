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
from dispatcher.dispatch.facility_gate import FacilityGate
from dispatcher.dispatch.holdings import DoubleHold, Holdings, Released
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
from dispatcher.dispatch.vehicle_sense import LegView, Reaction, SenseLimits, VehicleSense
from dispatcher.dispatch.zone_rules import ZoneRules
from dispatcher.leadership.state import FencedOut
from dispatcher.links.commands import CommandOutcome
from dispatcher.links.vehicle_events import VehicleEvent
from dispatcher.metrics import DISPATCH_ALERTS
from dispatcher.metrics import DISPATCH_DOUBLE_HOLDS as DOUBLE_HOLDS
from dispatcher.missions.domain import Location, MissionRecord, Scope
from dispatcher.missions.lifecycle import MissionEvent, MissionStatus
from dispatcher.ops.caller import Caller
from dispatcher.ops.durable import UNREACHABLE
from dispatcher.ops.fleet_access import FleetLookup
from dispatcher.ops.missions import MissionOps, MissionRefused
from fleet.changes import FleetChange
from fleet.model import ChangeKind, VehicleKind
from geo.facility_maps import FacilityMaps

log = structlog.get_logger(__name__)

#: After a restart, how long the engine waits before it plans: the vehicles report their
#: state (and the orders they still run) first. Seconds.
RESTART_SETTLE_S = 3.0

#: After a restart, how long a vehicle that held a mission before is kept from taking
#: another until that one is planned again (normally the first plan does it). Seconds.
RESTART_HOLD_S = 30.0

#: Who the engine's mission events name as their actor.
SYSTEM = Caller.system("dispatch")
#: Legs of one plan released side by side (each takes a database connection meanwhile:
#: well below the pool's size, so the API and ingest keep theirs).
RELEASES_AT_ONCE = 8
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
        sense: SenseLimits | None = None,
        gate: FacilityGate | None = None,
    ) -> None:
        self._ops = ops
        #: Active/standby per facility (None: this daemon dispatches every facility).
        self._gate = gate
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
        #: The stuck-robot watchdog and the critical-battery rule (vehicle_sense.py).
        self.sense = VehicleSense(sense or SenseLimits())
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
        #: The lost robot's last layout node, where a handed-over rider waits (robots).
        self._handover_node: dict[uuid.UUID, str | None] = {}
        self._forced_charge: set[uuid.UUID] = set()
        #: Charge legs the operator asked for: they end full, not at the resume threshold.
        self._forced_legs: set[str] = set()
        self._new: set[uuid.UUID] = set()
        #: After a restart: the vehicle each open mission had before it (its order may still
        #: run there; cancelled when another vehicle takes the mission).
        self._before_restart: dict[uuid.UUID, uuid.UUID] = {}
        #: After a restart: riders on board -> (their vehicle, the step it reached). The same
        #: vehicle is given the rest of the trip (the drop-off) again.
        self._resume: dict[uuid.UUID, tuple[uuid.UUID, int]] = {}
        self._settle_until = 0.0
        #: Set by :meth:`load`: the loops plan nothing before the missions in flight are
        #: known (a mission created meanwhile would go to a vehicle that still has one).
        self._loaded = asyncio.Event()
        #: Loads under way: no plan meanwhile (it would see half the missions recovered).
        self._loading = 0
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

    async def load(self, facility_id: uuid.UUID | None = None) -> int:
        """Load the open missions from Postgres and recover those in flight (a restart).

        Only those of the facilities this daemon leads (of ``facility_id`` alone when
        given: a takeover, :meth:`facility_acquired`); missions already known are kept.

        A mission whose rider is on board (its timeline says ``pickup_completed`` since its
        last assignment) stays with its vehicle, which is given the drop-off again (a new
        order; the old one, if the robot still runs it, is cancelled first). Any other
        mission that had a vehicle is planned again (``reassigned``, reason
        ``engine_restart``); its old vehicle's order is cancelled when another takes it.
        Planning waits :data:`RESTART_SETTLE_S` for the vehicles to report first.

        A mission already held for an operator before the restart stays held with its
        reason (``missions.held_reason``).
        """
        self._loading += 1
        try:
            await self._load(facility_id)
        finally:
            self._loading -= 1
        self._loaded.set()
        if self._new:
            self._new_wake.set()
        log.info("dispatch.loaded", missions=len(self.missions))
        return len(self.missions)

    async def _load(self, facility_id: uuid.UUID | None) -> None:
        after = None
        while True:
            page = await self._ops.list(SYSTEM, statuses=OPEN, limit=1000, after=after)
            for m in page.items:
                if m.id in self.missions:
                    continue
                if facility_id is not None and m.facility_id != facility_id:
                    continue
                if facility_id is None and not self._leads(m.facility_id):
                    continue
                self.missions[m.id] = m
                if m.status is MissionStatus.IN_PROGRESS and m.held_reason:
                    await self._hold(m.id, m.held_reason, m.vehicle_id)
                elif m.status in (MissionStatus.ASSIGNED, MissionStatus.IN_PROGRESS):
                    await self._recover(m)
            if page.next_cursor is None:
                break
            after = page.next_cursor
        if self._before_restart or self._resume:
            self._settle_until = time.monotonic() + RESTART_SETTLE_S
        self._debounce.mark(time.monotonic())
        self._wake.set()

    # Active/standby (dispatcher.leadership) ------------------------------------------------

    def _leads(self, facility_id: uuid.UUID) -> bool:
        return self._gate is None or self._gate.leads(facility_id)

    def _holds(self, facility_id: uuid.UUID) -> bool:
        """This daemon holds the facility's lease (maybe still loading it): its missions
        are kept, planned once the load is done."""
        return self._gate is None or self._gate.fence(facility_id) is not None

    async def facility_acquired(self, facility_id: uuid.UUID) -> None:
        """This daemon leads ``facility_id`` now (a standby taking over): its open missions
        are loaded and recovered as after a restart (riders on board resume with their
        vehicle, the others are planned again, held ones stay held; orders the robots
        still run are reconciled by the channels once the vehicles have reported)."""
        async with self._lock:
            self._forget_facility(facility_id)  # whatever an earlier tenure left behind
            await self.load(facility_id)
        log.info("dispatch.facility_taken_over", facility_id=str(facility_id))

    async def facility_lost(self, facility_id: uuid.UUID) -> None:
        """Another daemon leads ``facility_id`` now: its missions and legs are forgotten
        without a word to the vehicles (the new leader carries on with them). The gate
        stopped every send and write for it already; this clears the memory."""
        async with self._lock:
            self._forget_facility(facility_id)
        log.warning("dispatch.facility_stepped_down", facility_id=str(facility_id))

    def _forget_facility(self, facility_id: uuid.UUID) -> None:
        gone = {mid for mid, m in self.missions.items() if m.facility_id == facility_id}
        for vehicle_id, released in list(self.holdings.legs.items()):
            if released.leg.facility_id == facility_id or released.leg.mission_id in gone:
                self.holdings.release(vehicle_id)
                for channel in self._channels.values():
                    channel.forget(vehicle_id)
        for mid in gone:
            self.missions.pop(mid, None)
            self.holdings.forget_mission(mid)
            for table in (
                self._lost_reason, self._refused, self._handover, self._handover_node,
                self._before_restart, self._resume, self.blocked,
            ):  # fmt: skip
                table.pop(mid, None)
            self._new.discard(mid)

    async def _recover(self, m: MissionRecord) -> None:
        """One mission in flight at the restart (see :meth:`load`)."""
        reached = None
        if m.status is MissionStatus.IN_PROGRESS:
            found = await self._ops.get(SYSTEM, m.id)
            if found is not None:
                reached = steps.reached_by([e.event for e in found[1]])
        if m.vehicle_id is not None and reached is not None and steps.picked_up(reached):
            self._resume[m.id] = (m.vehicle_id, reached)
            log.warning(
                "dispatch.recovering_rider_on_board",
                mission_id=str(m.id),
                vehicle_id=str(m.vehicle_id),
                reached=reached,
            )
            return
        if m.vehicle_id is not None:
            self._before_restart[m.id] = m.vehicle_id
        self._lost_reason[m.id] = "engine_restart"

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
        self.sense.observe(event)
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
        if not self._holds(mission.facility_id):
            return  # another daemon dispatches it
        self.missions[mission.id] = mission
        self._new.add(mission.id)
        self._new_wake.set()

    async def mission_changed(self, mission_id: uuid.UUID, event: MissionEvent) -> None:
        """A change made by someone else (operator, API): cancel, priority, resolution."""
        found = await self._ops.get(SYSTEM, mission_id)
        if (
            self._gate is not None
            and mission_id not in self.missions
            and (found is None or not self._holds(found[0].facility_id))
        ):
            return  # not one this daemon dispatches
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
        self._handover_node.pop(mission_id, None)
        released = self.holdings.of_mission(mission_id)
        if released is not None:
            self.holdings.release(released.leg.vehicle_id)
            await self._withdraw(released.leg, why)

    # Planning -------------------------------------------------------------------------------

    async def _plan_loop(self) -> None:
        await self._loaded.wait()
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
                try:
                    await self.plan_now()
                except UNREACHABLE as exc:
                    # A look-up needed PostgreSQL; mission events are spooled meanwhile.
                    log.warning("dispatch.plan_deferred", error=type(exc).__name__)
                    await asyncio.sleep(self._tick_s)
                    self.mark()
                except DoubleHold as exc:
                    # An engine bug, caught before any order went out (the bookkeeping
                    # refused it): logged and counted, and the next plan starts afresh,
                    # rather than the daemon stopping for every vehicle and mission.
                    DOUBLE_HOLDS.inc()
                    log.error("dispatch.double_hold_refused", error=str(exc))
                    await asyncio.sleep(self._tick_s)
                    self.mark()

    async def plan_now(self) -> None:
        """Plan the open missions and release the next legs (one plan at a time).

        Nothing is planned while no vehicle could take a mission (a backlog with no
        vehicle online would otherwise be re-planned on every new mission and tick)."""
        if not self._accepting:
            return
        if self._loading or time.monotonic() < self._settle_until:
            self.mark()  # after a restart: let the vehicles report first
            return
        async with self._lock:
            await self._resume_riders()
        inputs = self._inputs()  # synchronous: a consistent snapshot without the lock
        if inputs.missions and not inputs.vehicles:
            self.idle_skips += 1
        elif inputs.missions:
            inputs = await self._apply_zone_rules(inputs)
        if inputs.missions and inputs.vehicles:
            plan = await self._planner.plan(inputs, quick=False)
            async with self._lock:
                not_due = self._planner.not_due(plan, self.missions)
                await self._commit(self._planner.by_vehicle(plan), not_due=not_due)
            self.plans += 1
        async with self._lock:
            await self._charge_idle_robots()

    async def _quick_loop(self) -> None:
        await self._loaded.wait()
        while True:
            await self._new_wake.wait()
            self._new_wake.clear()
            try:
                await self.insert_new()
            except DoubleHold as exc:  # as in _plan_loop: refused before any order
                DOUBLE_HOLDS.inc()
                log.error("dispatch.double_hold_refused", error=str(exc))
                self.mark()

    async def insert_new(self) -> None:
        """The quick insertion: the new missions onto the free vehicles near them, at
        once (greedy, in a thread); then the full plan improves on it, debounced."""
        if not self._accepting or self._loading:
            return  # after a load, the missions left in _new wake this again
        new, self._new = self._new, set()
        inputs, near = await self._quick_inputs(new)
        if inputs.missions and inputs.vehicles:
            plan = await self._planner.plan(inputs, quick=True, near=near)
            async with self._lock:
                not_due = self._planner.not_due(plan, self.missions)
                await self._commit(self._planner.by_vehicle(plan), partial=True, not_due=not_due)
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
        try:
            blocked = await self._zones.blocked(inputs.missions)
        except UNREACHABLE:
            blocked = {m: why for m, why in self.blocked.items()}  # the last known rules
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

    async def _quick_inputs(
        self, new: set[uuid.UUID]
    ) -> tuple[PlanInputs, dict[str, list[str]] | None]:
        """The quick insertion's inputs: the new open missions the zones allow, and the
        free vehicles among their candidates (Redis GEO).

        The candidates are looked up first, alongside the zone check (two independent
        round trips, not one after the other), and only those vehicles are looked at:
        the whole fleet's snapshot and eligibility, thousands of vehicles on the event
        loop for every new mission, are only needed when some mission has no candidate
        list (then every free vehicle may serve it, as before). Also returns the candidate
        lists (None: no candidate finder), which the planner takes as they are."""
        missions = self._inputs(only=new, among=frozenset()).missions
        if not missions:
            return PlanInputs(vehicles=(), busy={}, missions=()), None
        found = await asyncio.gather(
            self._planner.nearby(missions),
            self._apply_zone_rules(
                PlanInputs(vehicles=(), busy={}, missions=missions), partial=True
            ),
            return_exceptions=True,
        )
        for outcome in found:
            if isinstance(outcome, BaseException):
                raise outcome
        near, allowed = found
        assert not isinstance(near, BaseException) and not isinstance(allowed, BaseException)
        kept = {m.id for m in allowed.missions}
        among: frozenset[uuid.UUID] | None = None
        if near is not None and all(str(m) in near for m in kept):
            among = frozenset(uuid.UUID(v) for m in kept for v in near[str(m)])
        return self._inputs(only=kept, among=among), near

    def _inputs(
        self, only: set[uuid.UUID] | None = None, among: frozenset[uuid.UUID] | None = None
    ) -> PlanInputs:
        """What to plan: every open mission without a leg, or (``only``, the quick
        insertion) those of ``only``, with the free vehicles only (``among``: only those
        of these vehicles; None: the whole fleet). With no such vehicle, at most one
        mission (whether any is open: nothing can be planned anyway)."""
        busy = {vid: r.leg for vid, r in self.holdings.legs.items()} if only is None else {}
        pool = (
            self.missions
            if only is None
            else {i: self.missions[i] for i in only if i in self.missions}
        )
        # A mission taken back from a robot that still drives it waits until it lets go.
        releasing = frozenset().union(*(c.releasing() for c in self._channels.values()))
        open_ = (
            m
            for mid, m in pool.items()
            if mid not in self.holdings.by_mission
            and mid not in self.holdings.held
            and mid not in self._resume
            and mid not in releasing
            and not m.status.is_final
            and self._leads(m.facility_id)
        )
        first = next(open_, None)
        if first is None:
            # Nothing to plan (every mission has its vehicle, the usual case right after a
            # quick insertion): the fleet is not gone through, which at 5,000 vehicles
            # kept the event loop for tens of milliseconds on every debounced re-plan.
            return PlanInputs(vehicles=(), busy=busy, missions=())
        # A vehicle whose rider waits for an operator (held) carries that rider still: it
        # takes no other mission until the operator has resolved the held one.
        with_rider = {
            m.vehicle_id
            for mid in self.holdings.held
            if (m := self.missions.get(mid)) is not None and m.vehicle_id is not None
        }
        # So does a vehicle whose rider's drop-off waits to be given back (after a restart
        # or a takeover): the quick insertion must not hand it another mission meanwhile.
        with_rider.update(vehicle_id for vehicle_id, _ in self._resume.values())
        views = (
            self._fleet.snapshot()
            if among is None
            else tuple(v for i in among if (v := self._fleet.get(i)) is not None)
        )
        fleet = [
            v
            for v in views
            if v.kind in self._channels
            and self._leads(v.facility_id)
            and v.id not in with_rider
            and plannable(v, self._policy)
            and v.id not in self._forced_charge
            and not self._charging_leg(v.id)
            and not self.sense.kept_from_work(v.id, time.time())
            and (only is None or self.holdings.is_free(v.id))
        ]
        # With no vehicle to plan for, the callers only ask whether a mission is open: the
        # first found says so. The whole backlog was scanned on every debounced plan (up to
        # five a second while missions keep coming): a cost growing with the backlog.
        return PlanInputs(
            vehicles=tuple(fleet),
            busy=busy,
            missions=(first, *open_) if fleet else (first,),
            handover=dict(self._handover),
            refused={k: frozenset(v) for k, v in self._refused.items()},
        )

    def _charging_leg(self, vehicle_id: uuid.UUID) -> bool:
        released = self.holdings.legs.get(vehicle_id)
        return released is not None and released.leg.mission_id is None

    async def _commit(
        self,
        plan: Mapping[uuid.UUID, tuple[uuid.UUID, ...]],
        *,
        partial: bool = False,
        not_due: frozenset[uuid.UUID] = frozenset(),
    ) -> None:
        """Release the first mission of each free vehicle's plan; keep the rest as its
        horizon (``partial``: a quick insertion, which leaves other vehicles' horizons).
        A first mission in ``not_due`` (scheduled, not due yet) stays in the horizon."""
        # A slow plan (20 s in a loaded worker) may name missions finished meanwhile: kept
        # in a horizon, they made an idle robot look busy (no charging) until the next
        # full plan with open missions.
        plan = {
            vehicle_id: kept
            for vehicle_id, planned in plan.items()
            if (kept := tuple(m for m in planned if m in self.missions))
        }
        if partial:
            self.holdings.horizon.update(plan)
        else:
            self.holdings.horizon = dict(plan)
        together: list[tuple[uuid.UUID, MissionRecord, tuple[Stop, ...]]] = []
        # Vehicles kept for their mission from before a restart (``_free_from_before``).
        waiting: list[uuid.UUID] = []
        for vehicle_id, planned in plan.items():
            if not self._accepting or not self.holdings.is_free(vehicle_id):
                continue
            first = planned[0]
            if first in self.holdings.by_mission:
                continue
            if first in not_due:
                continue  # released by a later plan, once due
            if vehicle_id in self._refused.get(first, ()):
                # Refused (declined, let expire) while this plan was being solved, from
                # inputs of before: not offered the same mission again.
                continue
            if not await self._free_from_before(vehicle_id, first):
                waiting.append(vehicle_id)
                continue  # until its old mission has another vehicle (this plan, usually)
            horizon = self._horizon(vehicle_id, planned[1:])
            together.append((vehicle_id, self.missions[first], horizon))
        await self._release_together(together)
        if any(not self._old_missions(v) for v in waiting):
            # Its old mission went to another vehicle just now: the next plan gives this
            # one work, without waiting for the tick.
            self.mark()

    def _horizon(self, vehicle_id: uuid.UUID, rest: tuple[uuid.UUID, ...]) -> tuple[Stop, ...]:
        """The stops of a vehicle's planned missions after the one released."""
        view = self._fleet.get(vehicle_id)
        robot = view is not None and view.kind is VehicleKind.ROBOT
        return tuple(
            s
            for mid in rest
            if mid in self.missions
            for s in mission_stops(
                self.missions[mid],
                self._service_s,
                # A robot's order refuses a stop without a layout node.
                self._nodes(self.missions[mid]) if robot else (None, None),
            )
        )

    async def _release_together(
        self, releases: Sequence[tuple[uuid.UUID, MissionRecord, tuple[Stop, ...]]]
    ) -> None:
        """Release legs to different vehicles side by side (at most
        :data:`RELEASES_AT_ONCE` at a time). Each release is a few database and Redis
        round trips; one after the other, the last vehicle of a plan waited for all the
        others, and the lock stayed held meanwhile, so a new mission's quick insertion
        waited too. The legs share no vehicle and no mission, and the caller holds the
        engine's lock throughout, so no other path holds a vehicle or changes a mission
        meanwhile (the checks of :meth:`_commit` stay true). Every release runs to its
        end; then the first error, if any, is raised (as the loop did, but without
        stopping the others half way between a mission's ``assigned`` and its order).

        After a restart a release may also cancel the order another vehicle had before
        (:meth:`_cancel_before_restart`). That vehicle gets no leg of its own in the same
        batch (:meth:`_free_from_before` kept it out while it held that mission on
        record), and whatever is sent to it later (the next plan, the channel's tick)
        leaves after the cancel: the channels send to one vehicle in the order the sends
        were decided (the robot channel's per-robot lock; a driver's ``cancel_job`` names
        the offer it takes back, so its order does not matter)."""
        if len(releases) == 1:
            await self._release_mission(*releases[0])
            return
        gate = asyncio.Semaphore(RELEASES_AT_ONCE)

        async def one(
            vehicle_id: uuid.UUID, mission: MissionRecord, horizon: tuple[Stop, ...]
        ) -> None:
            async with gate:
                if self._accepting:  # stopping meanwhile: the rest are not released
                    await self._release_mission(vehicle_id, mission, horizon)

        results = await asyncio.gather(*(one(*r) for r in releases), return_exceptions=True)
        for outcome in results:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _release_mission(
        self, vehicle_id: uuid.UUID, mission: MissionRecord, horizon: tuple[Stop, ...]
    ) -> None:
        view = self._fleet.get(vehicle_id)
        if view is None or view.kind not in self._channels or not plannable(view, self._policy):
            return  # changed while the planner ran: the next plan sees it
        nodes: tuple[str | None, str | None] = (None, None)
        if view.kind is VehicleKind.ROBOT:
            nodes = self._nodes(mission)
            if mission.id in self._handover:  # the rider waits where the lost robot stopped
                nodes = (self._handover_node.get(mission.id), nodes[1])
        await self._cancel_before_restart(mission, vehicle_id)
        leg = mission_leg(
            mission,
            vehicle_id,
            nodes=nodes,
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
            await self._lose(
                released,
                LegFailure.NOT_TAKEN,
                result.detail,
                blame=result.outcome is not CommandOutcome.RETRY,
            )

    async def _free_from_before(self, vehicle_id: uuid.UUID, mission_id: uuid.UUID) -> bool:
        """Whether ``vehicle_id`` may take ``mission_id`` as far as missions from before a
        restart go. One it still holds on record, waiting to be planned again, would make
        it hold two: for :data:`RESTART_HOLD_S` after the start the vehicle waits (its old
        mission usually finds another vehicle in that time); after that the old mission
        is recorded ``unassigned`` first, so a mission that finds no vehicle does not keep
        its old one idle for ever and the record never shows a vehicle with two."""
        old = self._old_missions(vehicle_id, mission_id)
        if not old:
            return True
        if time.monotonic() <= self._settle_until + RESTART_HOLD_S:
            return False
        for mid in old:
            mission = self.missions[mid]
            if mission.status is not MissionStatus.PENDING and not await self._transition(
                mid, MissionEvent.UNASSIGNED, vehicle_id, reason="engine_restart"
            ):
                return False  # refused (changed meanwhile): the next plan looks again
            self._before_restart.pop(mid, None)
            self._lost_reason[mid] = "engine_restart"
        return True

    def _old_missions(self, vehicle_id: uuid.UUID, but: uuid.UUID | None = None) -> list[uuid.UUID]:
        """Open missions ``vehicle_id`` held before a restart, waiting to be planned again
        (other than ``but``)."""
        return [
            mid
            for mid, holder in self._before_restart.items()
            if holder == vehicle_id and mid != but and mid in self.missions
        ]

    async def _cancel_before_restart(self, mission: MissionRecord, vehicle_id: uuid.UUID) -> None:
        """A mission planned again after a restart: the robot that had it before stops."""
        old = self._before_restart.pop(mission.id, None)
        if old is None or old == vehicle_id or not self.holdings.is_free(old):
            # Busy with a new leg: its new order replaced the old one (the robot channel
            # cancels an order it does not know before it sends one); a cancelOrder now
            # would cancel the new leg.
            return
        view = self._fleet.get(old)
        if view is None or view.kind is not VehicleKind.ROBOT:
            return
        stale = mission_leg(mission, old, nodes=(None, None), service_s=self._service_s)
        await self._withdraw(stale, LegFailure.CANCELLED)

    async def _resume_riders(self) -> None:
        """After a restart, give each robot with a rider on board its drop-off again, and
        carry on with each driver's trip where the phone still runs it."""
        for mission_id, (vehicle_id, reached) in list(self._resume.items()):
            mission = self.missions.get(mission_id)
            view = self._fleet.get(vehicle_id)
            if mission is None or mission.status.is_final:
                del self._resume[mission_id]
                continue
            if view is not None and view.online and view.kind is VehicleKind.DRIVER:
                if not self.holdings.is_free(vehicle_id):
                    continue
                del self._resume[mission_id]
                if not self._adopt_trip(mission, vehicle_id, reached):
                    await self._hold(mission_id, "engine_restart", vehicle_id)
                continue
            if (
                view is None
                or not view.online
                or view.kind is not VehicleKind.ROBOT
                or view.kind not in self._channels
            ):
                del self._resume[mission_id]
                await self._hold(mission_id, "engine_restart", vehicle_id)
                continue
            if not self.holdings.is_free(vehicle_id):
                continue
            del self._resume[mission_id]
            driver = self.holdings.by_mission.get(mission_id)
            if driver is not None:
                # Should not happen (planning leaves resumed missions alone); if it does,
                # the mission already has a vehicle: a second order would send two.
                log.error(
                    "dispatch.resume_skipped",
                    mission_id=str(mission_id),
                    vehicle_id=str(vehicle_id),
                    held_by=str(driver),
                )
                continue
            whole = mission_leg(
                mission,
                vehicle_id,
                nodes=self._nodes(mission) if view.kind is VehicleKind.ROBOT else (None, None),
                service_s=self._service_s,
            )
            leg = replace(whole, stops=whole.stops[1:])  # the drop-off only
            released = self.holdings.hold(leg)
            released.reached = reached
            # No new mission event: the mission keeps its vehicle (a ``reassigned`` here
            # would also make the next restart forget how far this vehicle got).
            result = await self._channels[view.kind].release(leg)
            log.info(
                "dispatch.rider_resumed",
                leg_id=leg.leg_id,
                mission_id=str(mission_id),
                vehicle_id=str(vehicle_id),
                outcome=result.outcome.value,
            )
            if result.outcome is not CommandOutcome.DONE:
                await self._lose(
                    released,
                    LegFailure.NOT_TAKEN,
                    result.detail,
                    blame=result.outcome is not CommandOutcome.RETRY,
                )

    def _adopt_trip(self, mission: MissionRecord, vehicle_id: uuid.UUID, reached: int) -> bool:
        """A driver's phone keeps its trip through fleetd's restart or a takeover: the
        driver channel follows it again, no offer sent and no mission event recorded (the
        mission keeps its driver). False when the driver's status names no job (the trip
        ended or was dropped while no daemon followed it): the operator decides then."""
        channel = self._channels.get(VehicleKind.DRIVER)
        adopt = getattr(channel, "adopt", None)
        if adopt is None or mission.id in self.holdings.by_mission:
            return False
        leg = mission_leg(mission, vehicle_id, nodes=(None, None), service_s=self._service_s)
        released = self.holdings.hold(leg)
        released.reached, released.accepted = reached, True
        if adopt(leg, reached):
            log.info(
                "dispatch.rider_resumed",
                leg_id=leg.leg_id,
                mission_id=str(mission.id),
                vehicle_id=str(vehicle_id),
                outcome="adopted",
            )
            return True
        self.holdings.release(vehicle_id)
        return False

    async def _record_assignment(self, mission: MissionRecord, vehicle_id: uuid.UUID) -> bool:
        """``assigned`` (or ``reassigned`` with the reason), before the leg is released."""
        reason = self._lost_reason.get(mission.id)
        event = MissionEvent.ASSIGNED
        if reason is not None or mission.status is not MissionStatus.PENDING:
            # It had a vehicle and lost it (back to pending) or changes hands.
            event = MissionEvent.REASSIGNED
            reason = reason or "replanned"
        ok = await self._transition(mission.id, event, vehicle_id, reason=reason)
        if ok:
            self._lost_reason.pop(mission.id, None)
            self._handover.pop(mission.id, None)
            self._handover_node.pop(mission.id, None)
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
        """Record one event; keeps :attr:`missions` current. False when refused (also
        when this daemon does not, or no longer, lead the mission's facility)."""
        known = self.missions.get(mission_id)
        fence = None
        if self._gate is not None:
            fence = self._gate.fence(known.facility_id) if known is not None else None
            if fence is None:
                log.warning(
                    "dispatch.transition_not_leader",
                    mission_id=str(mission_id),
                    mission_event=event.value,
                )
                return False
        try:
            result = await self._ops.transition(
                SYSTEM,
                mission_id,
                event,
                scope=Scope.everything(),
                vehicle_id=vehicle_id,
                reason=reason,
                # While PostgreSQL is away the event is spooled and checked against this copy.
                known=known,
                fence=fence,
            )
        except FencedOut as exc:
            # Another daemon leads the facility now: nothing was written; step down.
            log.error("dispatch.write_fenced_out", mission_id=str(mission_id), error=str(exc))
            if self._gate is not None:
                self._gate.fenced_out(exc.fence.facility_id)
            return False
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
            while True:  # in order: an item PostgreSQL could not take is tried again
                try:
                    async with self._lock:
                        if isinstance(item, LegProgress):
                            await self.apply(item)
                        else:
                            await self._vehicle_changed(item)
                    break
                except UNREACHABLE as exc:
                    log.warning("dispatch.progress_deferred", error=type(exc).__name__)
                    await asyncio.sleep(0.5)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.time()
            for channel in self._channels.values():
                for p in await channel.tick(now):
                    self._inbox.put_nowait(p)
            async with self._lock:
                await self._sense_vehicles(now)

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

    async def _lose(
        self, released: Released, failure: LegFailure, detail: str = "", *, blame: bool = True
    ) -> None:
        """A leg will not be completed: re-plan its mission, or hold it for an operator.

        ``blame``: the vehicle refused or failed it, so it is not offered that mission
        again; False when the leg never reached it (the broker or Redis away, the vehicle
        offline for a moment): a retry, which may well go to the same vehicle."""
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
        if blame:
            self._refused.setdefault(mission.id, set()).add(leg.vehicle_id)
        if decision is Recovery.HOLD:
            await self._hold(mission.id, failure.value, leg.vehicle_id)
            return
        # Back to pending at once (the vehicle released in the database as in memory);
        # the next vehicle is recorded as ``reassigned`` with this reason.
        event = refusal_event(failure)
        if event is None and mission.status is not MissionStatus.PENDING:
            event = MissionEvent.UNASSIGNED
        if event is not None:
            await self._transition(mission.id, event, leg.vehicle_id, reason=failure.value)
        self._lost_reason[mission.id] = failure.value
        self.mark(urgent=True)

    async def _hold(
        self, mission_id: uuid.UUID, why: str, vehicle_id: uuid.UUID | None = None
    ) -> None:
        """Wait for an operator: ``held`` recorded (so a restart keeps it waiting)."""
        self.holdings.held[mission_id] = why
        mission = self.missions.get(mission_id)
        if mission is not None and mission.held_reason != why:
            await self._transition(mission_id, MissionEvent.HELD, None, reason=why)
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

    async def _sense_vehicles(self, now: float) -> None:
        """The watchdog's verdicts (vehicle_sense.py): a stuck robot's or a critically low
        one's leg is withdrawn and lost with that reason (planned again, or held with the
        rider on board); the caller holds the lock."""
        legs = {
            vid: LegView(
                r.leg.leg_id,
                r.leg.mission_id is not None,
                steps.picked_up(r.reached),
                (r.leg.stops[-1].lat, r.leg.stops[-1].lon) if r.leg.stops else None,
            )
            for vid, r in self.holdings.legs.items()
        }
        # Only robots with a leg, or flagged stuck (to see them move), are looked at: not
        # a copy of the whole fleet every second.
        views = [v for vid in legs.keys() | self.sense.stuck() if (v := self._fleet.get(vid))]
        for verdict in self.sense.check(views, legs, now):
            released = self.holdings.legs.get(verdict.vehicle_id)
            log.warning(
                "dispatch.vehicle_sensed",
                vehicle_id=str(verdict.vehicle_id),
                leg_id=verdict.leg_id,
                cause=verdict.cause.value,
                reaction=verdict.reaction.value,
            )
            if verdict.reaction is Reaction.FINISH or released is None:
                continue
            failure = LegFailure(verdict.cause.value)
            try:
                await self._withdraw(released.leg, failure)
                await self._lose(released, failure, verdict.cause.value)
            except UNREACHABLE as exc:
                log.warning("dispatch.sense_deferred", error=type(exc).__name__)
                self.sense.retry(verdict)
                return
            # Its plan after this leg is void: the robot is kept from work (stuck) or
            # goes to charge, which a stale horizon would delay.
            self.holdings.horizon.pop(verdict.vehicle_id, None)

    def stuck_vehicles(self) -> frozenset[uuid.UUID]:
        """Robots the watchdog finds stuck now (the ``vehicle_stuck`` alert)."""
        return self.sense.stuck()

    # Operator ------------------------------------------------------------------------------

    def resolution_choices(
        self, mission_id: uuid.UUID, status: MissionStatus
    ) -> tuple[Resolution, ...]:
        return choices(status, mission_id in self.holdings.held)

    def held_reason(self, mission_id: uuid.UUID) -> str | None:
        return self.holdings.held.get(mission_id)

    def held_missions(self) -> dict[uuid.UUID, str]:
        """Every mission held for an operator's decision, with the reason (a copy)."""
        return dict(self.holdings.held)

    async def reassign_held(self, mission_id: uuid.UUID, at: Location) -> bool:
        """An operator chose ``reassign`` for a held mission: plan a new vehicle to pick
        the rider up at ``at``. False when the mission is not held."""
        async with self._lock:
            if self.holdings.held.pop(mission_id, None) is None:
                return False
            self._handover[mission_id] = at
            mission = self.missions.get(mission_id)
            lost = self._fleet.get(mission.vehicle_id) if mission and mission.vehicle_id else None
            self._handover_node[mission_id] = lost.last_node_id if lost is not None else None
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
        below, forced = self._policy.charge_below_pct, self._forced_charge
        # Only a robot low on battery and not charging, or sent by an operator, can need a
        # station (needs_charge): the rest of the fleet is passed over without a view.
        candidates = self._fleet.select(
            lambda v: (
                v.key.kind is VehicleKind.ROBOT
                and v.online
                and (
                    v.id in forced
                    or (not v.charging and v.battery_pct is not None and v.battery_pct < below)
                )
            )
        )
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
            for v in candidates
            if v.position is not None
            and not self.sense.kept_from_work(v.id, time.time())
            and self._leads(v.facility_id)
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
            await self._lose(
                released,
                LegFailure.NOT_TAKEN,
                result.detail,
                blame=result.outcome is not CommandOutcome.RETRY,
            )


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
