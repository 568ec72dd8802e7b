"""The supervisor: opens fleetd's resources in order, runs its tasks, shuts down in two phases.

Start-up order: migrations -> Postgres pool -> facilities -> Redis -> registry (loaded
from Postgres) -> writers -> MQTT links -> dispatch engine -> HTTP API. Shutdown reverses
it: first intake stops (the API stops accepting requests, the MQTT session closes, the
dispatch engine releases no more legs; then the facility leases are released, so a standby
daemon takes over at once), then the writers drain what they hold within
``daemon.shutdown_grace_s`` (the audit sealer chains the last requests' audit rows
first), then the rest is cancelled and the resources close (``AsyncExitStack``).

Under systemd (``Type=notify``, :mod:`dispatcher.sd_notify`): ``READY=1`` once the API
serves and the broker session is up, ``STATUS=`` lines, ``WATCHDOG=1`` from a task of the
event loop (a stuck loop stops the pings and systemd restarts the daemon), ``STOPPING=1``
when shutdown begins (the API then refuses new missions with 503 and ``/readyz`` says
``draining``), ``RELOADING=1`` ... ``READY=1`` around a SIGHUP reload
(:mod:`dispatcher.reload`: log level and format, ``[alerts]``, the zones, the token cache).

Tests run the daemon embedded (``install_signal_handlers=False``) and stop it with
:meth:`Daemon.stop` (and reload it with :meth:`Daemon.reload`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as aioredis
import structlog
import uvicorn

from dispatcher.alerting.watch import AlertWatch
from dispatcher.api.app import create_app
from dispatcher.api.serving import server_config
from dispatcher.audit.checkpoints import AuditCheckpointer
from dispatcher.audit.log import AuditSealer
from dispatcher.auth.tokens import TokenCache
from dispatcher.config import ConfigError, Settings, spool_path
from dispatcher.dispatch.channels import make_channels
from dispatcher.dispatch.robot_travel import layout_travel
from dispatcher.dispatch.service import DispatchService, build_dispatch, charging_stations
from dispatcher.facility_layouts import FacilityLayouts, load_facility_layouts
from dispatcher.fleet_metrics import count_liveness_changes, count_suppressed_history
from dispatcher.fleet_sync import (
    FleetWriter,
    GeoSync,
    add_configured_vehicles,
    record_from_row,
    run_liveness,
)
from dispatcher.leadership.service import Leadership
from dispatcher.leadership.state import LeaseTiming, default_holder
from dispatcher.links.assembly import VehicleLinks, build_vehicle_links
from dispatcher.links.driver_link import DriverLink
from dispatcher.links.event_bus import VehicleEventBus
from dispatcher.links.event_log import log_vehicle_events
from dispatcher.links.mqtt import MqttTransport
from dispatcher.links.robot_link import RobotLink
from dispatcher.logs import configure_logging
from dispatcher.ops.denials import DenialLog
from dispatcher.ops.durable import DurableWrites
from dispatcher.ops.missions import MissionOps
from dispatcher.ops.passenger_reads import PassengerReadLog
from dispatcher.reload import ReloadPlan, plan_reload
from dispatcher.route_zones import RouteZones, layout_documents
from dispatcher.sd_notify import Notifier
from dispatcher.services import Services
from dispatcher.storage import fleet_store
from dispatcher.storage.db import open_pool, reveal
from dispatcher.storage.event_stream import EventHub
from dispatcher.storage.live_positions import LivePositions
from dispatcher.storage.migrate import apply_migrations
from dispatcher.storage.partitions import run_partition_maintenance
from dispatcher.storage.spool import Spool
from dispatcher.storage.telemetry import TelemetryWriter
from fleet.model import VehicleKey, VehicleKind
from fleet.registry import FleetRegistry
from geo.facility_maps import FacilityMaps

log = structlog.get_logger(__name__)

#: Named daemon tasks, as the supervisor takes them.
_Tasks = list[tuple[str, Callable[[], Awaitable[None]]]]


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the daemon owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class _Running:
    """What the supervisor holds while running, in start order."""

    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class Daemon:
    """fleetd's long-running process. ``await Daemon(settings).run()``."""

    def __init__(
        self,
        settings: Settings,
        *,
        install_signal_handlers: bool = True,
        layouts: Mapping[str, FacilityLayouts] | None = None,
        reload_settings: Callable[[], Settings] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        #: Facility key -> its loaded layouts (routes, charging stations). ``fleetd run``
        #: loads them before start (a bad file stops it there); embedded, they load here.
        self._layouts = (
            layouts
            if layouts is not None
            else load_facility_layouts(settings.effective_facilities, None)
        )
        self._install_signals = install_signal_handlers
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._heartbeat = time.monotonic()
        self.services: Services | None = None
        self.registry: FleetRegistry | None = None
        self.transport: MqttTransport | None = None
        self.telemetry: TelemetryWriter | None = None
        self.robot_link: RobotLink | None = None
        self.driver_link: DriverLink | None = None
        self.vehicle_events: VehicleEventBus | None = None
        self.event_hub: EventHub | None = None
        self.dispatch: DispatchService | None = None
        self.route_zones: RouteZones | None = None
        #: Tallied refusals of the API (set when the app is built).
        self.denials: DenialLog | None = None
        #: The write path's spool (set once the pool is open).
        self.durable: DurableWrites | None = None
        #: systemd's notify socket (a no-op without ``$NOTIFY_SOCKET``).
        self.notifier = notifier if notifier is not None else Notifier()
        #: Reads the configuration again for a reload (SIGHUP); None: nothing to reload from.
        self._reload_settings = reload_settings
        self._reload_wanted = asyncio.Event()
        #: True from the first moment of shutdown: new missions get 503, /readyz "draining".
        self.draining = False
        self._alerts: AlertWatch | None = None
        self._token_cache: TokenCache | None = None
        #: Active/standby per facility (None when ``leadership.enabled`` is off).
        self.leadership: Leadership | None = None

    def stop(self) -> None:
        """Ask the daemon to shut down (what SIGTERM does)."""
        self._stop.set()

    def request_reload(self) -> None:
        """Ask the daemon to reload its configuration (what SIGHUP does)."""
        self._reload_wanted.set()

    async def wait_ready(self) -> None:
        """Wait until the API is serving and the broker session is up."""
        await self._ready.wait()

    async def run(self) -> None:
        s = self.settings
        log.info("daemon.starting", instance_id=s.daemon.instance_id)
        self.notifier.status("starting: migrations and connections")
        if s.database.migrate_on_start:
            applied = await apply_migrations(
                s.database.owner_dsn, password=s.database.owner_password
            )
            if applied:
                log.info("daemon.migrated", versions=applied)
        async with AsyncExitStack() as stack:
            pool = await stack.enter_async_context(open_pool(s.database))
            durable = await self._open_durable(pool)
            facilities = s.effective_facilities
            await fleet_store.sync_facilities(pool, facilities)
            # Before the engine loads: a lone daemon is active for every facility at once.
            self.leadership = await self._start_leadership(stack, pool, durable)
            redis = aioredis.from_url(s.redis.url, password=reveal(s.redis.password))
            stack.push_async_callback(redis.aclose)
            registry = await self._load_registry(pool, FacilityMaps(s.facility_specs))
            leads = self.leadership
            telemetry = TelemetryWriter(
                pool,
                max_rows=s.database.telemetry_buffer_rows,
                flush_interval_s=s.database.telemetry_flush_interval_s,
                # A standby's copy of the same messages would store every sample twice.
                holds=leads.holds if leads else None,
            )
            self.telemetry = telemetry
            links = self._open_links(registry, redis, telemetry)
            # The event hub is the supervisor's: its task listens, and it is closed at the
            # start of shutdown (open streams never end by themselves; uvicorn would wait).
            hub = EventHub(s.database.dsn, password=s.database.password, supervised=True)
            stack.push_async_callback(hub.close)
            self.event_hub = hub
            # The operators' no-go and slow zones as the robots' route graphs apply them.
            self.route_zones = RouteZones(
                pool,
                s.facility_specs,
                documents=layout_documents(((f.id, f.key) for f in facilities), self._layouts),
            )
            dispatch = self._build_dispatch(pool, redis, registry, links, hub, durable)
            server, api_tasks = self._api(pool, redis, registry, links, hub, durable, dispatch)
            await self._run_tasks(
                pool, redis, registry, telemetry, links, api_tasks, server, durable
            )
        log.info("daemon.stopped")

    async def _open_durable(self, pool: asyncpg.Pool) -> DurableWrites:
        """The spool of writes made while PostgreSQL is away, loaded from its file."""
        s = self.settings
        spool = Spool(spool_path(s), max_bytes=s.spool.max_bytes)
        await spool.load()
        durable = DurableWrites(pool, spool, flush_interval_s=s.spool.flush_interval_s)
        durable.attach(MissionOps(pool, durable))
        self.durable = durable
        return durable

    def _api(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        registry: FleetRegistry,
        links: VehicleLinks,
        hub: EventHub,
        durable: DurableWrites,
        dispatch: DispatchService | None,
    ) -> tuple[uvicorn.Server, tuple[EventHub, DenialLog, PassengerReadLog]]:
        """The control API's server, and the tasks its audit logs need."""
        s, zones = self.settings, self.route_zones
        services = Services(
            settings=s,
            pool=pool,
            redis=redis,
            fleet=registry,
            commander=links.commander,
            broker_connected=links.transport.is_healthy,
            loop_heartbeat=lambda: self._heartbeat,
            dispatch=dispatch.engine if dispatch is not None else None,
            layouts=self._layouts,
            zones_changed=zones.changed if zones is not None else None,
            durable=durable,
            broker_dropped=links.transport.broker_dropped,
            mission_created=dispatch.engine.take_new if dispatch is not None else None,
            draining=lambda: self.draining,
            leadership=self.leadership.roles if self.leadership is not None else None,
        )
        self.services = services
        app = create_app(services)
        app.state.event_hub = hub  # the events route uses it; never makes its own
        server = _EmbeddedServer(server_config(app, s.api))
        self.denials = denials = app.state.denials
        self._token_cache = app.state.token_cache
        reads: PassengerReadLog = app.state.passenger_reads
        return server, (hub, denials, reads)

    def _build_dispatch(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        registry: FleetRegistry,
        links: VehicleLinks,
        hub: EventHub,
        durable: DurableWrites,
    ) -> DispatchService | None:
        s = self.settings
        if not s.dispatch.enabled:
            log.info("dispatch.disabled")
            return None
        self.dispatch = build_dispatch(
            s,
            pool=pool,
            redis=redis,
            registry=registry,
            channels=make_channels(s, registry, links, self._layouts, self.route_zones),
            hub=hub,
            events=links.events,
            stations=charging_stations(self._layouts, registry.maps),
            robot_routes=layout_travel(s, self._layouts, self.route_zones),
            detours=self.route_zones,
            durable=durable,
            gate=self.leadership,
        )
        if self.leadership is not None:
            self.leadership.attach(self.dispatch.engine)
        return self.dispatch

    async def _start_leadership(
        self, stack: AsyncExitStack, pool: asyncpg.Pool, durable: DurableWrites
    ) -> Leadership | None:
        """Active/standby per facility (``[leadership]``), every lease tried once."""
        cfg = self.settings.leadership
        if not cfg.enabled:
            return None
        # Leases on connections of their own: behind the telemetry and fleet flushes of
        # the main pool, renewals of a loaded daemon waited past their budget and the
        # lease passed back and forth (the 1,000-vehicle soak).
        lease_pool = await stack.enter_async_context(
            open_pool(self.settings.database.model_copy(update={"pool_min": 1, "pool_max": 2}))
        )
        leadership = Leadership(
            lease_pool,
            [(f.id, f.key) for f in self.settings.effective_facilities],
            holder=cfg.holder_id or default_holder(os.getpid()),
            timing=LeaseTiming.of(
                cfg.takeover_s,
                renew_s=cfg.renew_interval_s or None,
                poll_s=cfg.poll_interval_s or None,
            ),
            durable=durable,
            reclaim_dead_local=cfg.reclaim_dead_local,
            spool_wait_s=cfg.spool_wait_s,
            prefer=frozenset(
                f.id for f in self.settings.effective_facilities if f.key in cfg.prefer
            ),
        )
        await leadership.start()
        log.info("leadership.started", holder=leadership.holder, roles=leadership.roles())
        return leadership

    async def _load_registry(self, pool: asyncpg.Pool, maps: FacilityMaps) -> FleetRegistry:
        s = self.settings
        registry = FleetRegistry(
            maps=maps,
            default_facility_id=s.default_facility.id,
            heartbeat_timeout_s=s.fleet.heartbeat_timeout_s,
            robot_heartbeat_timeout_s=s.fleet.robot_heartbeat_timeout,
            events_per_minute=s.fleet.vehicle_events_per_minute,
            on_event_suppressed=count_suppressed_history,
        )
        for row in await fleet_store.load_vehicles(pool):
            registry.add(record_from_row(row), announce=False)
        for (kind, manufacturer, serial), vid in (await fleet_store.load_retired_ids(pool)).items():
            registry.remember_id(VehicleKey(VehicleKind(kind), manufacturer, serial), vid)
        add_configured_vehicles(registry, s)
        log.info("daemon.registry_loaded", vehicles=len(registry))
        count_liveness_changes(registry)
        self.registry = registry
        return registry

    def _open_links(
        self, registry: FleetRegistry, redis: aioredis.Redis, telemetry: TelemetryWriter
    ) -> VehicleLinks:
        links = build_vehicle_links(self.settings, registry, redis, telemetry)
        self.robot_link, self.driver_link = links.robot.link, links.driver.link
        self.transport = links.transport
        self.vehicle_events = links.events
        return links

    async def _run_tasks(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        registry: FleetRegistry,
        telemetry: TelemetryWriter,
        links: VehicleLinks,
        api_tasks: tuple[EventHub, DenialLog, PassengerReadLog],
        server: uvicorn.Server,
        durable: DurableWrites,
    ) -> None:
        s = self.settings
        hub, denials, reads = api_tasks
        writer, geo = self._fleet_writers(pool, redis, registry)
        sealer = AuditSealer(pool)
        checkpointer = AuditCheckpointer(pool, s.audit, s.daemon.instance_id)
        alerts = self._alert_watch(pool, registry, links)
        intake, events = self._intake(links, server)
        await self._supervise(
            intake=intake,
            workers=[
                (
                    "fleetd.liveness",
                    lambda: run_liveness(
                        registry,
                        interval_s=s.fleet.liveness_check_interval_s,
                        cut_off=lambda: not links.transport.is_connected(),
                    ),
                ),
                ("fleetd.alerts", alerts.run),
                ("fleetd.geo_sync", geo.run),
                ("fleetd.fleet_writer", writer.run),
                ("fleetd.telemetry", telemetry.run),
                ("fleetd.audit_sealer", sealer.run),
                ("fleetd.spool", durable.run),
                *self._leadership_task(),
                ("fleetd.audit_checkpoints", checkpointer.run),
                ("fleetd.audit_denials", denials.run),
                ("fleetd.audit_reads", reads.run),
                ("fleetd.partitions", lambda: run_partition_maintenance(pool, s.database)),
                ("fleetd.events", hub.run),
                *self._zone_task(),
                *events,
                ("fleetd.heartbeat", self._beat),
                # Pinged from this loop: a stuck loop is what the watchdog is for.
                ("fleetd.watchdog", lambda: self.notifier.run_watchdog(self._status_line)),
                ("fleetd.reload", self._reloads),
                ("fleetd.ready", lambda: self._mark_ready(server, links.transport)),
            ],
            # The audit writers, then sealer.close: it seals the last requests' audit
            # rows, and a failing flush before it would skip it. Mission events and audit
            # rows spooled while PostgreSQL was away go before the sealer chains the last
            # audit rows (never raises: what cannot go stays in the fsync'd spool).
            drain=[
                *(denials.close, reads.close, lambda: _flush_spool(durable), sealer.close),
                *(writer.flush, geo.flush, telemetry.close),
            ],
            server=server,
            # Event streams never end by themselves; uvicorn would wait for them.
            before_exit=[
                *([self.dispatch.engine.stop_intake] if self.dispatch is not None else []),
                hub.close,
            ],
        )

    def _intake(self, links: VehicleLinks, server: uvicorn.Server) -> tuple[_Tasks, _Tasks]:
        """The tasks that take work in (stopped first at shutdown), and the vehicle events'
        consumer when there is no dispatch task."""
        intake: _Tasks = [("fleetd.mqtt", links.transport.run), ("fleetd.api", server.serve)]
        # The dispatch task takes the vehicle events off the bus (and logs them); without
        # it, fleetd.vehicle_events does. Dispatch is intake: at shutdown it stops with
        # MQTT, before the writers drain, so no new leg is released.
        events: _Tasks = []
        if self.dispatch is not None:
            intake.append(("fleetd.dispatch", self.dispatch.run))
        else:
            events.append(("fleetd.vehicle_events", lambda: log_vehicle_events(links.events)))
        return intake, events

    def _fleet_writers(
        self, pool: asyncpg.Pool, redis: aioredis.Redis, registry: FleetRegistry
    ) -> tuple[FleetWriter, GeoSync]:
        """The registry's writers to PostgreSQL and Redis GEO."""
        s, leadership = self.settings, self.leadership
        writer = FleetWriter(
            pool,
            registry,
            interval_s=s.database.position_flush_interval_s,
            holds=leadership.holds if leadership else None,
            facilities=leadership.leases if leadership else (),
            gap_keep_s=max(30.0, 3 * leadership.timing.takeover_s) if leadership else 30.0,
        )
        positions = LivePositions(
            redis, key_prefix=s.redis.key_prefix, max_age_s=registry.heartbeat_timeout_s
        )
        return writer, GeoSync(registry, positions, interval_s=s.redis.geo_flush_interval_s)

    def _alert_watch(
        self, pool: asyncpg.Pool, registry: FleetRegistry, links: VehicleLinks
    ) -> AlertWatch:
        """The alert watch, told of what the dispatch engine and the links sense."""
        engine = self.dispatch.engine if self.dispatch is not None else None
        leadership = self.leadership
        alerts = AlertWatch(
            pool,
            registry,
            self.settings.alerts,
            held=engine.held_missions if engine is not None else dict,
            stuck=engine.stuck_vehicles if engine is not None else frozenset,
            unreliable=links.driver.link.unreliable_positions,
            leads=leadership.leads if leadership is not None else lambda _f: True,
        )
        registry.subscribe(alerts.nudge)  # offline, fatal: alerted at once, not next interval
        self._alerts = alerts
        return alerts

    def _leadership_task(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        leadership = self.leadership
        return [("fleetd.leadership", leadership.run)] if leadership is not None else []

    def _zone_task(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        zones = self.route_zones
        return [("fleetd.route_zones", zones.run)] if zones is not None else []

    async def _supervise(
        self,
        *,
        intake: list[tuple[str, Callable[[], Awaitable[None]]]],
        workers: list[tuple[str, Callable[[], Awaitable[None]]]],
        drain: list[Callable[[], Awaitable[object]]],
        server: uvicorn.Server,
        before_exit: list[Callable[[], Awaitable[object]]],
    ) -> None:
        loop = asyncio.get_running_loop()
        if self._install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
            loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        try:
            async with asyncio.TaskGroup() as tg:
                worker_tasks = [tg.create_task(_named(fn), name=name) for name, fn in workers]
                intake_tasks = [tg.create_task(_named(fn), name=name) for name, fn in intake]
                await self._stop.wait()
                self.draining = True
                self.notifier.stopping("stopping: draining intake and writers")
                log.info("daemon.stopping")
                await self._stop_intake(intake_tasks, server, before_exit)
                # Dispatch has stopped: hand the facilities over to a standby at once.
                if self.leadership is not None:
                    await self.leadership.release_all()
                # Phase 2: drain what the writers hold, within the grace period.
                await self._stop_workers(worker_tasks)
                await self._drain(drain)
        finally:
            if self._install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    loop.remove_signal_handler(sig)

    async def _stop_intake(
        self,
        intake_tasks: list[asyncio.Task[None]],
        server: uvicorn.Server,
        before_exit: list[Callable[[], Awaitable[object]]],
    ) -> None:
        """Phase 1: stop intake. The API finishes in-flight requests; MQTT closes.

        Within ``shutdown_grace_s``; past it, what is left is cancelled and shutdown goes on
        to drain (a request stuck on a dead database must not keep the daemon up).
        """
        grace_s = self.settings.daemon.shutdown_grace_s
        try:
            async with asyncio.timeout(grace_s):
                for hook in before_exit:
                    await hook()
                server.should_exit = True
                for task in reversed(intake_tasks):
                    if task.get_name() != "fleetd.api":
                        task.cancel()
                # wait, not gather: a gather cancelled by the timeout waits for every task
                # it cancels, so one that swallows its cancellation would hold it forever.
                if intake_tasks:
                    await asyncio.wait(intake_tasks)
            _retrieve(intake_tasks)
            return
        except TimeoutError:
            log.warning("daemon.intake_stop_timeout", grace_s=grace_s)
        server.force_exit = True
        # Bounded as phase 2 is: an intake task that ignores its cancellation must not
        # hold the shutdown either.
        await _cancel_within(intake_tasks, grace_s, "daemon.intake_stop_timeout")
        _retrieve(intake_tasks)

    async def _stop_workers(self, worker_tasks: list[asyncio.Task[None]]) -> None:
        """Phase 2 begins: cancel the workers and wait for them, within ``shutdown_grace_s``.

        Past it, the tasks still running are logged by name and cancelled once more (one
        that swallowed the first cancellation, or hangs in its clean-up, ends at its next
        await), and shutdown goes on to drain: one worker must not hold the daemon up.
        """
        grace_s = self.settings.daemon.shutdown_grace_s
        await _cancel_within(worker_tasks, grace_s, "daemon.workers_stop_timeout")

    async def _drain(self, drain: list[Callable[[], Awaitable[object]]]) -> None:
        """Phase 2: write what the writers hold, within ``shutdown_grace_s``."""
        grace_s = self.settings.daemon.shutdown_grace_s
        try:
            async with asyncio.timeout(grace_s):
                for flush in drain:
                    await flush()
        except TimeoutError:
            log.warning("daemon.drain_timeout", grace_s=grace_s)
        except Exception as exc:
            log.warning("daemon.drain_failed", error=str(exc))

    async def _beat(self) -> None:
        while True:
            self._heartbeat = time.monotonic()
            await asyncio.sleep(1.0)

    async def _mark_ready(self, server: uvicorn.Server, transport: MqttTransport) -> None:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for this
            await asyncio.sleep(0.05)
        await transport.wait_connected()
        # What start-up built (settings, layouts, route graphs, the app) lives as long as
        # the daemon: out of the cyclic collector's generations, a full collection no longer
        # walks its ~200,000 objects while vehicle messages wait.
        gc.collect()
        gc.freeze()
        self._ready.set()
        self.notifier.ready(self._status_line())
        log.info(
            "daemon.ready",
            api=self.settings.api.base_url,
            broker=f"{self.settings.mqtt.host}:{self.settings.mqtt.port}",
        )
        await asyncio.Event().wait()

    def _status_line(self) -> str:
        """The ``STATUS=`` line ``systemctl status fleetd`` shows."""
        if self.draining:
            return "stopping: draining intake and writers"
        transport, durable = self.transport, self.durable
        broker = "up" if transport is not None and transport.is_connected() else "DOWN"
        spool = len(durable.spool) if durable is not None else 0
        vehicles = len(self.registry) if self.registry is not None else 0
        db = ", database away (spooling)" if durable is not None and durable.db_away else ""
        return f"serving: {vehicles} vehicles, broker {broker}, spool {spool} rows{db}"

    async def _reloads(self) -> None:
        """The supervisor's task: one reload per SIGHUP (several at once make one)."""
        while True:
            await self._reload_wanted.wait()
            self._reload_wanted.clear()
            await self.reload()

    async def reload(self) -> ReloadPlan | None:
        """Read the configuration again and apply what can change while running.

        Logs what changed and which changed keys need a restart; a file that does not
        load is refused (logged, the running configuration stays). None when refused
        or when there is nothing to reload from.
        """
        if self._reload_settings is None:
            log.warning("daemon.reload_unavailable", reason="no configuration source")
            return None
        self.notifier.reloading("reloading configuration")
        try:
            try:
                fresh = self._reload_settings()
            except ConfigError as exc:
                log.error(
                    "daemon.reload_refused",
                    source=exc.source,
                    problems=[f"{key}: {msg}" for key, msg in exc.problems],
                    keeping="the running configuration",
                )
                return None
            plan = plan_reload(self.settings, fresh)
            await self._apply_reload(plan)
            log.info(
                "daemon.reloaded",
                applied=list(plan.applied),
                needs_restart=list(plan.needs_restart),
                also="zones reloaded, token cache flushed",
            )
            if plan.needs_restart:
                log.warning(
                    "daemon.reload_needs_restart",
                    keys=list(plan.needs_restart),
                    hint="systemctl restart fleetd applies these",
                )
            return plan
        finally:
            self.notifier.ready(self._status_line())

    async def _apply_reload(self, plan: ReloadPlan) -> None:
        new = plan.settings
        if {"daemon.log_level", "daemon.log_format"} & set(plan.applied):
            configure_logging(new.daemon.log_level, new.daemon.log_format)
        if self._alerts is not None:
            self._alerts.apply(new.alerts)
        self.settings = new
        if self.services is not None:
            self.services.settings = new
        # Not settings, but state a reload is expected to refresh: zones written by hand
        # in the database, and tokens revoked a moment ago (the cache keeps 5 s).
        if self._token_cache is not None:
            self._token_cache.clear()
        if self.route_zones is not None:
            await self.route_zones.changed()


async def _cancel_within(tasks: list[asyncio.Task[None]], grace_s: float, event: str) -> None:
    """Cancel ``tasks`` and wait for them up to ``grace_s``; those still running then are
    named in an error ``event`` and cancelled once more, and not waited for."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=grace_s)
    if pending:
        log.error(event, grace_s=grace_s, tasks=sorted(task.get_name() for task in pending))
        for task in pending:
            task.cancel()


def _retrieve(tasks: list[asyncio.Task[None]]) -> None:
    """Mark the ended tasks' exceptions as seen (the supervisor logged them as they ended):
    asyncio would otherwise report each again when the task is collected."""
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()


async def _flush_spool(durable: DurableWrites) -> None:
    """The shutdown's last try at the spool; rows PostgreSQL does not take stay spooled."""
    if durable.spool.empty:
        return
    try:
        flushed = await durable.flush()
    except Exception as exc:  # the database away at shutdown: the spool file keeps them
        log.warning("daemon.spool_kept", rows=len(durable.spool), error=type(exc).__name__)
        return
    log.info("daemon.spool_flushed", rows=flushed)


async def _named(fn: Callable[[], Awaitable[None]]) -> None:
    """Run one supervised task; its failure is logged with the task's name, then propagates."""
    task = asyncio.current_task()
    name = task.get_name() if task else "?"
    try:
        await fn()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("daemon.task_failed", task=name)
        raise
