"""The daemon task that keeps the ``alerts`` table current (task ``fleetd.alerts``).

Every ``alerts.check_interval_s`` it judges again the vehicles that changed since the
last round (the registry's ``ALERTS`` dirty list; every vehicle on the first round and
after new thresholds), reads the open missions and asks the dispatch engine which missions
it holds for an operator; the pure rules (:mod:`dispatcher.alerting.rules`) say which
alerts hold, and the difference with the open rows is raised or cleared, each change with
its ``alert_events`` row in one transaction (so it shows on ``GET /v1/events`` within a
second). Judging only the changed vehicles keeps a round's cost with the fleet's traffic,
not its size. A vehicle going offline or
reporting a fatal error does not wait for the interval: the registry's change feed
(:meth:`AlertWatch.nudge`) brings the next round forward, at most every
:data:`MIN_GAP_S`. A failed round (Postgres away) is logged and counted, and the next
round tries again: it never ends the task. With two daemons (``[leadership]``) each
looks after the alerts of the facilities it leads, and leaves the others' alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Protocol

import asyncpg
import structlog
from prometheus_client import Counter, Gauge

from dispatcher.alerting import store
from dispatcher.alerting.rules import (
    AlertCondition,
    AlertKey,
    AlertKind,
    Sensed,
    Thresholds,
    mission_alerts,
    vehicle_alerts,
)
from dispatcher.config import AlertSettings
from dispatcher.storage.db import CONNECT_ERRORS
from fleet.changes import FleetChange
from fleet.model import ChangeKind, VehicleFacts, VehicleStatus
from fleet.record import Consumer

log = structlog.get_logger(__name__)

#: The actor recorded on events the daemon itself causes.
ACTOR = "system:alerts"

ALERTS_RAISED = Counter("fleetd_alerts_raised_total", "Alerts raised, by kind.", ["kind"])
ALERTS_OPEN = Gauge("fleetd_alerts_open", "Alerts open now, by kind.", ["kind"])
ALERT_ROUNDS_FAILED = Counter(
    "fleetd_alert_rounds_failed_total", "Alert evaluations that failed (storage away)."
)

_STORAGE_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *CONNECT_ERRORS)

#: Least time between the start of two rounds that changes brought forward: a fleet-wide
#: outage (thousands of vehicles offline at once) costs a round per this, not one each.
MIN_GAP_S = 0.1


def _thresholds(settings: AlertSettings) -> Thresholds:
    return Thresholds(
        settings.low_battery_pct, settings.mission_wait_s, settings.critical_battery_pct
    )


class JudgedFleet(Protocol):
    """The live fleet as the watch reads it (implemented by ``fleet.registry.FleetRegistry``)."""

    def take_dirty(self, consumer: Consumer) -> Sequence[VehicleFacts]: ...

    def records(self) -> Iterable[VehicleFacts]: ...

    def record(self, vehicle_id: uuid.UUID) -> VehicleFacts | None: ...


class AlertWatch:
    """Raises and clears alerts from fleet state; :meth:`run` is the task."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        fleet: JudgedFleet,
        settings: AlertSettings,
        *,
        held: Callable[[], Mapping[uuid.UUID, str]] = dict,
        stuck: Callable[[], Collection[uuid.UUID]] = frozenset,
        unreliable: Callable[[], Collection[uuid.UUID]] = frozenset,
        clock: Callable[[], float] = time.time,
        leads: Callable[[uuid.UUID], bool] = lambda _facility_id: True,
    ) -> None:
        self._pool = pool
        self._leads = leads
        self._fleet = fleet
        self._interval = settings.check_interval_s
        self._limits = _thresholds(settings)
        self._held = held
        self._stuck = stuck
        self._unreliable = unreliable
        self._clock = clock
        self._wake = asyncio.Event()
        #: vehicle id -> the alerts that held when it was last judged (none: absent).
        self._vehicle_alerts: dict[uuid.UUID, tuple[AlertCondition, ...]] = {}
        #: The stuck and unreliable vehicles of the last round.
        self._sensed = Sensed(frozenset(), frozenset())
        #: Judge every vehicle at the next round (the first, or new thresholds).
        self._judge_all = True

    def nudge(self, change: FleetChange) -> None:
        """A registry change listener (cheap, on the loop): a vehicle gone offline or in a
        fatal error runs the next round at once. Other changes, and conditions that are
        not changes (battery, safety stop), wait for the interval; so do clearances."""
        kind = change.kind
        if (
            kind is ChangeKind.WENT_OFFLINE
            or (
                kind is ChangeKind.ERROR_RAISED
                and str(change.details.get("level", "")).upper() == "FATAL"
            )
            or (
                kind is ChangeKind.STATUS_CHANGED
                and change.details.get("to") == VehicleStatus.ERROR.value
            )
        ):
            self._wake.set()

    @property
    def nudged(self) -> bool:
        """A change asked for the next round to run at once (and it has not run yet)."""
        return self._wake.is_set()

    def apply(self, settings: AlertSettings) -> None:
        """New thresholds and interval (a configuration reload); the next round uses them."""
        self._interval = settings.check_interval_s
        self._limits = _thresholds(settings)
        self._judge_all = True

    def judge_vehicles(self) -> dict[AlertKey, AlertCondition]:
        """The vehicle alerts that hold now: judges again the vehicles that changed, and
        those whose stuck or unreliable mark came or went, since the last call (every
        vehicle at the first call and after :meth:`apply`)."""
        fleet = self._fleet
        sensed = Sensed(frozenset(self._stuck()), frozenset(self._unreliable()))
        changed = fleet.take_dirty(Consumer.ALERTS)
        if self._judge_all:
            self._judge_all = False
            self._vehicle_alerts.clear()
            judged: Iterable[VehicleFacts] = list(fleet.records())
        else:
            marked = (set(sensed.stuck) ^ set(self._sensed.stuck)) | (
                set(sensed.unreliable) ^ set(self._sensed.unreliable)
            )
            judged = [*changed, *(r for v in marked if (r := fleet.record(v)) is not None)]
        self._sensed = sensed
        for v in judged:
            conds = tuple(vehicle_alerts(v, self._limits, sensed))
            if conds:
                self._vehicle_alerts[v.id] = conds
            else:
                self._vehicle_alerts.pop(v.id, None)
        return {c.key: c for conds in self._vehicle_alerts.values() for c in conds}

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            self._wake.clear()  # a change during the round brings the next one forward
            try:
                await self.check()
            except _STORAGE_ERRORS as exc:
                ALERT_ROUNDS_FAILED.inc()
                log.warning("alerts.check_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            await asyncio.sleep(max(0.0, started + MIN_GAP_S - loop.time()))

    async def check(self) -> tuple[int, int]:
        """One round: (raised, cleared)."""
        now = self._clock()
        held = dict(self._held())
        every = self.judge_vehicles()  # in memory: a failed read below loses nothing
        missions = await store.open_missions(
            self._pool, held=held.keys(), ready_before=now - self._limits.mission_wait_s
        )
        every.update(mission_alerts(missions, held, now=now, limits=self._limits))
        # Only the facilities this daemon leads: a standby knows nothing of the held
        # missions and stuck robots the active one sees, and would clear those alerts
        # (and the active raise them again) every round.
        wanted = {k: c for k, c in every.items() if self._leads(c.facility_id)}
        existing = {
            a.key: a for a in await store.open_alerts(self._pool) if self._leads(a.facility_id)
        }
        raised = cleared = 0
        for key, alert in existing.items():
            if key not in wanted:
                async with self._pool.acquire() as conn, conn.transaction():
                    if await store.clear_alert(conn, alert.id, ACTOR) is not None:
                        cleared += 1
                        log.info("alerts.cleared", alert_id=str(alert.id), kind=key.kind.value)
        for key, cond in wanted.items():
            if key in existing:
                continue
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    row = await store.raise_alert(conn, cond, ACTOR)
            except asyncpg.ForeignKeyViolationError:
                continue  # the vehicle's row is not written yet: the next round raises it
            if row is not None:
                raised += 1
                ALERTS_RAISED.labels(key.kind.value).inc()
                log.info(
                    "alerts.raised",
                    alert_id=str(row.id),
                    kind=key.kind.value,
                    subject_id=str(key.subject_id),
                )
        counts = dict.fromkeys(AlertKind, 0)
        for key in wanted:
            counts[key.kind] += 1
        for kind, n in counts.items():
            ALERTS_OPEN.labels(kind.value).set(n)
        return raised, cleared
