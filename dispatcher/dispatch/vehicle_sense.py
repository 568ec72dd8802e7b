"""A robot that makes no progress, a battery that fell too low: noticed, and decided (pure).

Two rules, each a plain function of what the robot reports and what its leg is; the
engine (``engine.py``, one hook per tick) carries the verdicts out.

**Stuck** (:func:`watched`, :class:`VehicleSense`). A robot is *watched* while it has a
leg of fleetd's and reports an order, is online, in ``AUTOMATIC`` mode, not paused, not
charging, in no safety stop and with no FATAL error (those have their own alerts and
paths), and runs no action (an action ``INITIALIZING``, ``RUNNING`` or ``PAUSED``: a
pick, a drop, a charge take their time standing still). A watched robot whose position
moves less than ``moved_m`` and whose ``lastNodeSequenceId`` and ``lastNodeId`` do not
change for ``stuck_after_s`` (counted from its last progress, or from when it became
watched for its current leg, whichever is later) is **stuck**: the ``vehicle_stuck``
alert is raised and its leg is given up (:class:`Verdict`): with no rider on board it is
withdrawn (``cancelOrder``) and the mission planned again for another vehicle; with the
rider on board the mission is held for an operator. A stuck robot is given no new work
until it moves, or for ``retry_after_s`` at most (an idle robot has no reason to move by
itself: after that it may be given work again, on trial, and the watchdog judges it
afresh). The flag, and the alert, clear when it moves.

**Critical battery** (:func:`battery_reaction`). A robot with a mission leg whose battery
is at or below ``critical_battery_pct`` and not charging: with no rider on board, the leg
is withdrawn (the mission is planned again) and the charging policy sends the robot to a
charger at the next plan (it is below ``charge_below_pct`` and free); with the rider on
board it finishes the drop-off when the drop-off is at most ``finish_within_m`` away as
the crow flies, otherwise the mission is held for an operator. Decided once per leg.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from dispatcher.links.vehicle_events import ActionStateChanged, OrderStateSeen, VehicleEvent
from fleet.model import OperatingMode, VehicleKind, VehicleView

#: Action statuses in which the robot works standing still (``WAITING`` is an action of a
#: node not reached yet: the robot still has to drive there).
_IN_ACTION = frozenset({"INITIALIZING", "RUNNING", "PAUSED"})


class Cause(StrEnum):
    """Why a leg is given up (the mission event's reason, the ``LegFailure`` value)."""

    VEHICLE_STUCK = "vehicle_stuck"
    BATTERY_CRITICAL = "battery_critical"


class Reaction(StrEnum):
    """What happens to the leg."""

    WITHDRAW = "withdraw"  # no rider on board: cancelOrder, the mission planned again
    HOLD = "hold"  # the rider on board: cancelOrder, held for an operator
    FINISH = "finish"  # the rider on board and the drop-off near: let it finish


@dataclass(frozen=True, slots=True)
class SenseLimits:
    """When a robot is stuck or its battery critical (settings, in plain values)."""

    #: Seconds without progress, while watched, before a robot is stuck.
    stuck_after_s: float = 60.0
    #: A stuck robot is kept from new work for this long at most (seconds).
    retry_after_s: float = 300.0
    #: A move smaller than this (metres on its map) is no progress: pose jitter.
    moved_m: float = 0.5
    #: At or below this battery (percent), not charging, a mission leg is given up.
    critical_battery_pct: float = 10.0
    #: With the rider on board, a drop-off this close (metres, straight line) is finished.
    finish_within_m: float = 150.0
    #: Only a robot heard from within this many seconds is judged: while fleetd hears
    #: nothing (a broker outage), no report is no evidence of no progress.
    heard_within_s: float = 35.0


@dataclass(frozen=True, slots=True)
class LegView:
    """What the rules need of a robot's released leg."""

    leg_id: str
    #: False for a charging trip.
    mission: bool
    rider_on_board: bool
    #: The drop-off (lat, lon) of a mission leg.
    dropoff: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """A leg to give up (or, ``FINISH``, to let run), and why."""

    vehicle_id: uuid.UUID
    leg_id: str
    cause: Cause
    reaction: Reaction


def watched(
    view: VehicleView,
    leg: LegView | None,
    in_action: bool,
    *,
    now: float | None = None,
    heard_within_s: float = math.inf,
) -> bool:
    """Whether a robot is expected to make progress now (see the module docstring), and
    heard from recently enough (``now``, ``heard_within_s``) to tell."""
    return (
        view.kind is VehicleKind.ROBOT
        and leg is not None
        and (now is None or (view.last_seen is not None and now - view.last_seen <= heard_within_s))
        and view.order_id is not None
        and view.online
        and view.operating_mode is OperatingMode.AUTOMATIC
        and not view.paused
        and not view.charging
        and not view.maintenance
        and not view.safety_stop
        and not any(e.level.upper() == "FATAL" for e in view.errors)
        and not in_action
        and view.map_pose is not None
    )


def stuck_reaction(leg: LegView) -> Reaction:
    """A stuck robot's leg: held for an operator with the rider on board, else withdrawn."""
    return Reaction.HOLD if leg.mission and leg.rider_on_board else Reaction.WITHDRAW


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine) between two (lat, lon), metres."""
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    dp, dl = p2 - p1, math.radians(b[1] - a[1])
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000.0 * math.asin(math.sqrt(min(1.0, h)))


def battery_critical(view: VehicleView, limits: SenseLimits) -> bool:
    """At or below the critical level and not charging (no reading: not critical)."""
    return (
        view.battery_pct is not None
        and view.battery_pct <= limits.critical_battery_pct
        and not view.charging
    )


def battery_reaction(view: VehicleView, leg: LegView, limits: SenseLimits) -> Reaction | None:
    """What a critical battery means for a robot's mission leg (None: nothing to do).

    No rider on board: withdraw (and charge). Rider on board: finish when the drop-off is
    within ``finish_within_m`` of the robot (straight line: the route is longer, so the
    limit is kept short), otherwise hold for an operator. An unknown position or drop-off
    cannot show the drop-off is near: hold.
    """
    if not leg.mission or not battery_critical(view, limits):
        return None
    if not leg.rider_on_board:
        return Reaction.WITHDRAW
    here = view.position
    near = (
        here is not None
        and leg.dropoff is not None
        and distance_m((here.lat, here.lon), leg.dropoff) <= limits.finish_within_m
    )
    if near:
        return Reaction.FINISH
    return Reaction.HOLD


@dataclass(slots=True)
class _Track:
    """One robot's progress as last seen."""

    map_id: str
    x: float
    y: float
    node: tuple[str | None, int | None]
    #: When it last moved, or when the watch (re)started (epoch seconds).
    since: float
    #: The leg it was watched for at the last check (None: not watched). The clock starts
    #: when it becomes watched, and again with each new leg (new work, a new start).
    watching: str | None = None
    stuck: bool = False
    #: While stuck: no new work before this (epoch seconds).
    hold_until: float = 0.0


@dataclass(slots=True)
class VehicleSense:
    """The watchdog's memory: per robot, its last progress, actions and verdicts."""

    limits: SenseLimits = field(default_factory=SenseLimits)
    _tracks: dict[uuid.UUID, _Track] = field(default_factory=dict)
    #: Robot -> actions it runs now (ids), from its action states.
    _actions: dict[uuid.UUID, set[str]] = field(default_factory=dict)
    #: Robot -> (orderId, lastNodeSequenceId) of its last state seen.
    _order: dict[uuid.UUID, tuple[str | None, int]] = field(default_factory=dict)
    #: Legs whose battery verdict is taken (decided once per leg).
    _battery_decided: set[str] = field(default_factory=set)

    # Inputs -------------------------------------------------------------------------------

    def observe(self, event: VehicleEvent) -> None:
        """What a robot reported about its order and actions (cheap; every event)."""
        if isinstance(event, ActionStateChanged):
            running = self._actions.setdefault(event.vehicle_id, set())
            if str(event.status) in _IN_ACTION:
                running.add(event.action_id)
            else:
                running.discard(event.action_id)
        elif isinstance(event, OrderStateSeen):
            before = self._order.get(event.vehicle_id)
            if before is not None and before[0] != event.order_id:
                # A new (or no) order: actions of the old one may never be reported again.
                self._actions.pop(event.vehicle_id, None)
            self._order[event.vehicle_id] = (event.order_id, event.last_node_sequence_id)

    def in_action(self, vehicle_id: uuid.UUID) -> bool:
        return bool(self._actions.get(vehicle_id))

    # Decisions ----------------------------------------------------------------------------

    def check(
        self, views: Iterable[VehicleView], legs: Mapping[uuid.UUID, LegView], now: float
    ) -> list[Verdict]:
        """Update the progress of the robots in ``views`` at ``now`` (epoch seconds) and
        return the legs to give up (or let finish), each verdict once. ``views`` must hold
        every robot with a leg and every robot flagged stuck; others are forgotten."""
        out: list[Verdict] = []
        seen: set[uuid.UUID] = set()
        for view in views:
            if view.kind is not VehicleKind.ROBOT:
                continue
            seen.add(view.id)
            leg = legs.get(view.id)
            verdict = self._progress(view, leg, now)
            if verdict is None and leg is not None and leg.leg_id not in self._battery_decided:
                reaction = battery_reaction(view, leg, self.limits)
                if reaction is not None:
                    self._battery_decided.add(leg.leg_id)
                    verdict = Verdict(view.id, leg.leg_id, Cause.BATTERY_CRITICAL, reaction)
            if verdict is not None:
                out.append(verdict)
        for gone in set(self._tracks) - seen:
            del self._tracks[gone]
        live_legs = {leg.leg_id for leg in legs.values()}
        self._battery_decided &= live_legs
        return out

    def _progress(self, view: VehicleView, leg: LegView | None, now: float) -> Verdict | None:
        pose = view.map_pose
        order = self._order.get(view.id)
        node = (view.last_node_id, order[1] if order is not None else None)
        track = self._tracks.get(view.id)
        if pose is None:
            return None
        expected = watched(
            view,
            leg,
            self.in_action(view.id),
            now=now,
            heard_within_s=self.limits.heard_within_s,
        )
        if (
            track is None
            or track.map_id != pose.map_id
            or math.hypot(pose.x - track.x, pose.y - track.y) >= self.limits.moved_m
            or track.node != node
        ):
            # Moved (or first seen): progress; a stuck flag clears.
            watching = leg.leg_id if expected and leg is not None else None
            self._tracks[view.id] = _Track(pose.map_id, pose.x, pose.y, node, now, watching)
            return None
        if not expected or leg is None:
            track.watching = None  # the clock runs only while progress is expected
            return None
        if track.watching != leg.leg_id:
            track.watching, track.since = leg.leg_id, now
            return None
        if track.stuck and now < track.hold_until:
            return None  # judged already; on trial again once the hold is over
        if now - track.since < self.limits.stuck_after_s:
            return None
        track.stuck = True
        track.hold_until = now + self.limits.retry_after_s
        return Verdict(view.id, leg.leg_id, Cause.VEHICLE_STUCK, stuck_reaction(leg))

    def retry(self, verdict: Verdict) -> None:
        """A verdict the engine could not carry out (storage away): taken again next check."""
        if verdict.cause is Cause.BATTERY_CRITICAL:
            self._battery_decided.discard(verdict.leg_id)
        else:
            track = self._tracks.get(verdict.vehicle_id)
            if track is not None:
                track.stuck = False

    # Views --------------------------------------------------------------------------------

    def stuck(self) -> frozenset[uuid.UUID]:
        """Robots stuck now (until they move): the ``vehicle_stuck`` alert."""
        return frozenset(v for v, t in self._tracks.items() if t.stuck)

    def kept_from_work(self, vehicle_id: uuid.UUID, now: float) -> bool:
        """Whether a robot is not to be given new work: stuck, and not yet on trial."""
        track = self._tracks.get(vehicle_id)
        return track is not None and track.stuck and now < track.hold_until
