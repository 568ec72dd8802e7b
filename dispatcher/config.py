"""Typed settings for fleetd: a TOML file with environment-variable overrides.

Settings are built once in ``main()`` (see :func:`load_settings`) and passed down;
nothing reads them from a module global. Every value has a default that reaches the
services on this machine, so ``fleetd run`` works with no file at all.

Environment overrides use the prefix ``FLEETD_`` and ``__`` between levels, e.g.
``FLEETD_DATABASE__DSN`` or ``FLEETD_FLEET__HEARTBEAT_TIMEOUT_S``. They win over the file.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import tomllib
import uuid
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from fleet.model import FLEETD_NAMESPACE
from geo.facility import FacilitySpec, MapSpec, PlaceSpec
from protocols.vda5050.topics import identity_problem

CONFIG_ENV_VAR = "FLEETD_CONFIG"


class ConfigError(Exception):
    """The configuration is missing, unreadable or invalid.

    ``problems`` holds one ``(key, message)`` pair per wrong value, the key dotted
    the way it is written in the TOML file (``database.dsn``).
    """

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{key}: {msg}" for key, msg in problems]
        super().__init__(f"invalid configuration ({source}):\n  " + "\n  ".join(lines))


#: Keys whose values may hold credentials (DSNs and URLs carry passwords in their userinfo).
_SECRET_KEY_PARTS = ("password", "secret", "token", "dsn", "url", "key")


def _echoable(key: str, value: object) -> bool:
    """Whether a refused value may be quoted back in the error message.

    Error text lands on terminals and in journals, so only plain scalars under keys that
    cannot hold a credential are echoed; a model-level error's input is the whole section
    (or file), secrets included, and is never shown.
    """
    if isinstance(value, dict | list | tuple) or value is None:
        return False
    leaf = key.rsplit(".", 1)[-1].lower()
    return not any(part in leaf for part in _SECRET_KEY_PARTS)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class DaemonSettings(_Section):
    instance_id: Annotated[
        str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    ] = "fleetd-1"
    environment: Environment = Environment.DEVELOPMENT
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    shutdown_grace_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    #: fleetd's own durable files (the spool). Empty: ``$STATE_DIRECTORY`` (what systemd's
    #: ``StateDirectory=fleetd`` sets, /var/lib/fleetd), else ``.fleetd`` in the working
    #: directory.
    state_dir: str = ""


class SpoolSettings(_Section):
    """The local spool: mission events and audit rows kept on disk while PostgreSQL is away."""

    #: The spool file; empty: ``<daemon.state_dir>/spool-<daemon.instance_id>.jsonl``.
    path: str = ""
    #: Largest spool, in bytes (fsync'd JSON lines). Full: new missions are refused
    #: with 503; vehicle-safety commands still go out (their audit rows are then logged).
    max_bytes: Annotated[int, Field(ge=4096, le=10 * 1024**3)] = 64 * 1024**2
    #: How often the flusher tries PostgreSQL while the spool holds rows.
    flush_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0


class DatabaseSettings(_Section):
    dsn: Annotated[str, Field(pattern=r"^postgres(ql)?://")] = (
        "postgresql://postgres@127.0.0.1:5432/fleetd"
    )
    pool_min: Annotated[int, Field(ge=1, le=100)] = 2
    pool_max: Annotated[int, Field(ge=1, le=200)] = 10
    command_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    #: How often last-known positions and statuses are written (batched upsert).
    position_flush_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    #: How often buffered telemetry rows are COPYed.
    telemetry_flush_interval_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    #: Telemetry rows held while Postgres is slow; beyond this the oldest are dropped and counted.
    telemetry_buffer_rows: Annotated[int, Field(ge=1000, le=10_000_000)] = 200_000
    #: Keep one telemetry row per vehicle at most this often (0 keeps every message).
    telemetry_min_interval_s: Annotated[float, Field(ge=0, le=60)] = 0.0
    telemetry_retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    telemetry_partitions_ahead_days: Annotated[int, Field(ge=1, le=60)] = 3
    #: Days of vehicle history (vehicle_events) kept; older daily partitions are dropped.
    vehicle_events_retention_days: Annotated[int, Field(ge=1, le=3650)] = 90
    #: Password for ``dsn``'s login, kept out of the DSN so it never shows in a settings
    #: dump or an error (libpq's PGPASSWORD and ~/.pgpass work too).
    password: SecretStr | None = None
    #: The schema owner's DSN, used only to apply migrations; empty means ``dsn`` (one
    #: login for both, the local default). In production ``dsn`` names the runtime role
    #: (docs/operations.md, "Database roles"), which cannot alter or rewrite the audit log.
    migration_dsn: Annotated[str, Field(pattern=r"^(postgres(ql)?://.*)?$")] = ""
    migration_password: SecretStr | None = None
    #: Apply migrations when the daemon starts (needs the owner's login). Turn off when the
    #: daemon should hold only the runtime role's credentials and run ``fleetd migrate``
    #: with the owner's before an upgrade.
    migrate_on_start: bool = True

    @property
    def owner_dsn(self) -> str:
        """The DSN migrations run with."""
        return self.migration_dsn or self.dsn

    @property
    def owner_password(self) -> SecretStr | None:
        """The password migrations connect with."""
        return self.migration_password if self.migration_dsn else self.password

    @model_validator(mode="after")
    def _pool_bounds(self) -> DatabaseSettings:
        if self.pool_min > self.pool_max:
            raise ValueError("pool_min must not exceed pool_max")
        return self


class RedisSettings(_Section):
    url: Annotated[str, Field(pattern=r"^rediss?://")] = "redis://127.0.0.1:6379/0"
    #: Every key fleetd writes starts with this, so several deployments (or tests) share a server.
    key_prefix: Annotated[str, Field(min_length=1, max_length=64)] = "fleetd:"
    #: Redis AUTH password, kept out of ``url``.
    password: SecretStr | None = None
    #: Period of the batched live-position write (positions in look-ups lag by at most this).
    geo_flush_interval_s: Annotated[float, Field(gt=0, le=10)] = 0.5


class MqttSettings(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    username: str | None = None
    password: SecretStr | None = None
    #: TLS to the broker. With ``tls_ca_file`` the broker's certificate is checked against
    #: that CA, else against the system's; a client certificate is sent when both
    #: ``tls_cert_file`` and ``tls_key_file`` are set.
    tls: bool = False
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    #: MQTT client id; empty means "fleetd-<instance_id>". Fixed, so the broker keeps the session.
    client_id: str = ""
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    #: Keep the broker-side session across restarts so QoS 1 messages wait for us.
    persistent_session: bool = True
    #: VDA 5050 topic prefix is "{vda_interface}/{vda_major_version}".
    vda_interface: Annotated[str, Field(min_length=1, pattern=r"^[^/#+]+$")] = "uagv"
    vda_major_version: Annotated[str, Field(pattern=r"^v[0-9]+$")] = "v2"
    #: Driver-device protocol prefix (docs/protocols/driver.md).
    driver_prefix: Annotated[str, Field(min_length=1, pattern=r"^[^#+]+$")] = "fleetd/driver/v1"
    #: Larger payloads are rejected unread (a VDA state is ~1-20 KiB).
    max_payload_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 256 * 1024
    reconnect_max_delay_s: Annotated[float, Field(gt=0, le=300)] = 30.0
    #: This many disconnects, each within ``takeover_window_s`` of its connect, in a row:
    #: another client is using our client id (the broker drops the older session).
    takeover_disconnects: Annotated[int, Field(ge=2, le=100)] = 3
    takeover_window_s: Annotated[float, Field(gt=0, le=600)] = 10.0

    @property
    def vda_prefix(self) -> str:
        return f"{self.vda_interface}/{self.vda_major_version}"

    @model_validator(mode="after")
    def _tls_pair(self) -> MqttSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if not self.tls and (self.tls_ca_file or self.tls_cert_file):
            raise ValueError("tls_ca_file/tls_cert_file/tls_key_file need tls = true")
        return self


class UnknownVehiclePolicy(StrEnum):
    REGISTER = "register"
    REJECT = "reject"


class VehicleSettings(_Section):
    """A vehicle declared in configuration: known (so ``unknown_vehicles = "reject"`` lets
    it in) and pinned to its facility (reports on another facility's map are refused)."""

    kind: Literal["robot", "driver"]
    #: VDA 5050 manufacturer; empty for drivers.
    manufacturer: Annotated[str, Field(max_length=128)] = ""
    #: VDA 5050 serialNumber, or the driver id.
    serial: Annotated[str, Field(min_length=1, max_length=128)]
    #: Facility key; empty means ``fleet.default_facility``.
    facility: str = ""
    name: Annotated[str, Field(max_length=200)] = ""

    @model_validator(mode="after")
    def _identity(self) -> VehicleSettings:
        if (self.kind == "driver") == bool(self.manufacturer):
            raise ValueError("a robot needs a manufacturer; a driver has none")
        return self


class FleetSettings(_Section):
    #: A vehicle with no message for this long is offline (drivers; robots too unless
    #: ``robot_heartbeat_timeout_s`` is set).
    heartbeat_timeout_s: Annotated[float, Field(gt=0.1, le=3600)] = 10.0
    #: The same for robots. VDA 5050 lets an idle robot publish ``state`` only every 30 s,
    #: so the default leaves room for that; 0 means "use heartbeat_timeout_s". A robot
    #: that disconnects or dies is seen offline at once through its Last Will, whatever this is.
    robot_heartbeat_timeout_s: Annotated[float, Field(ge=0, le=3600)] = 35.0
    liveness_check_interval_s: Annotated[float, Field(gt=0.01, le=10)] = 0.25
    #: A vehicle neither configured below nor stored is refused; ``register`` (the demo's
    #: setting) registers it on first contact instead.
    unknown_vehicles: UnknownVehiclePolicy = UnknownVehiclePolicy.REJECT
    #: Facility (key) for vehicles that cannot be placed in one (drivers, unknown maps).
    default_facility: str = ""
    #: Robot serial numbers must keep to VDA 5050's alphabet (A-Z a-z 0-9 _ . : -); turn
    #: off for a legacy fleet (printable characters, no white space, still required).
    strict_identities: bool = True
    #: Vehicles known from configuration, each pinned to its facility.
    vehicles: list[VehicleSettings] = Field(default_factory=list)
    #: Drivers' facility from their login (issue 13, item 8): a driver whose driverId (its
    #: MQTT username under the shipped ACL) is ``<facility key>.<name>`` belongs to that
    #: facility, is pinned there, and is admitted even with ``unknown_vehicles = "reject"``
    #: (the broker's password file is then the registration). Others as before.
    driver_facility_from_login: bool = False
    #: Errors kept from one state message (the rest are dropped and counted).
    max_errors_per_state: Annotated[int, Field(ge=1, le=1000)] = 32
    #: Longest errorType / errorDescription kept (longer ones are cut).
    max_error_text: Annotated[int, Field(ge=16, le=10_000)] = 256
    #: vehicle_events rows one vehicle may cause per minute (registration aside); beyond
    #: it events are dropped and counted (fleetd_vehicle_events_dropped_total).
    vehicle_events_per_minute: Annotated[int, Field(ge=1, le=100_000)] = 120
    #: Drivers' position fixes (fleet/fixes.py): a fix implying more than this speed
    #: since the last accepted one (beyond both fixes' accuracy) is not used (m/s).
    driver_max_speed_mps: Annotated[float, Field(gt=0, le=1000)] = 15.0
    #: A fix whose reported accuracy is worse than this is not used (metres).
    driver_max_accuracy_m: Annotated[float, Field(gt=0, le=100_000)] = 30.0
    #: This many refused fixes of one driver within position_unreliable_window_s raise
    #: the position_unreliable alert (cleared after a window without one).
    position_unreliable_fixes: Annotated[int, Field(ge=1, le=10_000)] = 5
    position_unreliable_window_s: Annotated[float, Field(gt=0, le=86_400)] = 60.0

    @property
    def robot_heartbeat_timeout(self) -> float:
        """The silence after which a robot is offline (seconds)."""
        return self.robot_heartbeat_timeout_s or self.heartbeat_timeout_s


class AlertSettings(_Section):
    """Alerts for staff (dispatcher/alerting): when conditions become alerts."""

    #: Seconds between two evaluations of the fleet and the open missions. A vehicle gone
    #: offline or in a fatal error is evaluated at once; a safety stop or a low battery
    #: (state, not a change) waits for the next round: 0.5 keeps those within a second.
    check_interval_s: Annotated[float, Field(gt=0.05, le=60)] = 0.5
    #: A vehicle not charging at or below this battery level (percent) raises low_battery.
    low_battery_pct: Annotated[float, Field(ge=0, le=100)] = 20.0
    #: A pending mission without a vehicle for this long (seconds) raises mission_waiting.
    mission_wait_s: Annotated[float, Field(gt=0, le=86_400)] = 300.0
    #: A vehicle not charging at or below this battery level (percent) raises
    #: battery_critical (instead of low_battery), and a robot's mission leg is given up
    #: (docs/dispatch.md, "Stuck robots and critical batteries").
    critical_battery_pct: Annotated[float, Field(ge=0, le=100)] = 10.0

    @model_validator(mode="after")
    def _battery_levels(self) -> AlertSettings:
        if self.critical_battery_pct > self.low_battery_pct:
            raise ValueError("alerts: need critical_battery_pct <= low_battery_pct")
        return self


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    #: Bearer token the CLI sends (``FLEETD_TOKEN`` wins); the daemon itself ignores it.
    token: SecretStr | None = None
    #: Base URL the CLI uses; empty means http://{host}:{port}.
    url: str = ""
    max_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
    #: Requests in progress at once; beyond it the API answers 503 with Retry-After at
    #: once instead of queueing work it cannot finish in time (probes, /metrics and the
    #: event stream are not counted). 64 is some 60-130 ms of work for the daemon's one
    #: event loop (1-2 ms of CPU a request): more in progress only adds waiting.
    max_concurrent_requests: Annotated[int, Field(ge=1, le=100_000)] = 64
    #: HTTPS in the process: PEM certificate (chain) and private key. Both or neither.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    #: Addresses (IPs or CIDR networks) of reverse proxies whose X-Forwarded-For and
    #: X-Forwarded-Proto are believed. Empty: those headers are ignored, so no client (a
    #: local process included) can choose the address recorded as the audit ``source``.
    trusted_proxies: list[str] = Field(default_factory=list)
    #: Serve the interactive docs at /docs (the OpenAPI document stays at /openapi.json).
    #: Unset: on in development, off in production.
    docs: bool | None = None
    #: Lifetime of a token created without ``--expires``, in days (0: no expiry).
    token_lifetime_days: Annotated[int, Field(ge=0, le=3650)] = 90
    #: Write an audit row when a token reads missions (which carry passenger data).
    audit_passenger_reads: bool = True
    #: Refused requests (401/403) are audited per source, reason, route and token: the
    #: first of each at once, the rest as one row with a count per this many seconds.
    denied_audit_interval_s: Annotated[float, Field(ge=0.0, le=3600.0)] = 60.0
    #: Requests in progress at once whose bearer token has not authenticated recently
    #: (anonymous, bogus): a lane of their own, so a flood of them is shed before it
    #: takes the slots (and pool connections) operators' requests need.
    max_unverified_requests: Annotated[int, Field(ge=1, le=100_000)] = 16
    #: Event streams (``GET /v1/events``) open at once, in total and per token: each
    #: reads through the pool the writers use. Beyond them: 503 / 429 with Retry-After.
    max_event_streams: Annotated[int, Field(ge=1, le=10_000)] = 64
    max_event_streams_per_token: Annotated[int, Field(ge=1, le=1_000)] = 4
    #: Most events a resuming stream replays (``?after=``, ``Last-Event-ID``): an older
    #: resume point is refused (read history from the lists, then stream from now on).
    event_replay_max: Annotated[int, Field(ge=0, le=10_000_000)] = 10_000

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None

    @property
    def base_url(self) -> str:
        if self.url:
            return self.url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.port}"

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, proxies: list[str]) -> list[str]:
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError as exc:
                raise ValueError(f"{proxy!r} is not an IP address or network") from exc
        return proxies

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self


class AuditSettings(_Section):
    """Checkpoints of the audit chain's head, kept outside the database.

    Every ``checkpoint_interval_s`` (when the chain grew) the daemon logs
    ``audit.checkpoint`` with the head's position and hash, keyed with HMAC-SHA256 when
    ``checkpoint_key_file`` is set, and appends the same as a JSON line to
    ``checkpoint_file`` when set. ``fleetd audit verify --checkpoints FILE`` then reports
    a chain cut short or rewritten behind any checkpoint (docs/operations.md).
    """

    checkpoint_interval_s: Annotated[float, Field(gt=0, le=86_400)] = 60.0
    #: Append-only file of checkpoints (one JSON line each); ship it off the host.
    checkpoint_file: Path | None = None
    #: File holding the HMAC key (any bytes, 32 random ones are plenty; mode 0600, not
    #: readable by the database's administrators).
    checkpoint_key_file: Path | None = None


class PlannerSettings(_Section):
    """The planner (dispatcher/planner): strategy, search budget, re-plan stability,
    candidate pruning, and planning snapshots (VROOM JSON, off when ``snapshot_dir`` is
    empty). The live dispatch loop that uses these comes with the dispatch issue."""

    strategy: Literal["optimise", "greedy"] = "optimise"
    time_limit_s: Annotated[float, Field(gt=0, le=600)] = 1.0
    improvement_threshold: Annotated[float, Field(ge=0, lt=1)] = 0.05
    max_candidates: Annotated[int, Field(ge=1, le=1000)] = 8
    snapshot_dir: str = ""
    snapshot_max_files: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    snapshot_max_bytes: Annotated[int, Field(ge=1024 * 1024, le=1024**4)] = 1024**3


class RobotActionSettings(_Section):
    """How one kind of stop is written as a VDA 5050 action for one manufacturer's robots
    (dispatcher/dispatch/robot_actions.py)."""

    #: The actionType to send instead of fleetd's (pick, drop, startCharging).
    action_type: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    #: Fixed actionParameters (key -> value) the robot requires for it.
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)


class DispatchSettings(_Section):
    """The live dispatch loop (dispatcher/dispatch/): re-planning, candidates, charging."""

    enabled: bool = True
    #: Re-plan at least this often even when nothing changed (seconds).
    tick_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    #: Changes arriving within this quiet time make one re-plan (seconds).
    debounce_s: Annotated[float, Field(ge=0, le=60)] = 0.2
    #: A burst of changes never delays a re-plan by more than this (seconds).
    max_delay_s: Annotated[float, Field(gt=0, le=600)] = 1.0
    #: Redis GEO candidate search around each pickup: radius (m) and count.
    candidate_radius_m: Annotated[float, Field(gt=0, le=100_000)] = 2000.0
    candidate_count: Annotated[int, Field(ge=1, le=1000)] = 16
    #: Time limit of the quick insertion that gives a new mission a vehicle at once.
    quick_time_limit_s: Annotated[float, Field(gt=0, le=60)] = 0.2
    #: Where the full optimisation runs: a worker ``process`` (the event loop keeps its
    #: core while the solver works) or a ``thread`` of the daemon (one core machines).
    solver: Literal["process", "thread"] = "process"
    #: Robot cruise speed for travel estimates (m/s).
    robot_speed_mps: Annotated[float, Field(gt=0, le=10)] = 1.0
    #: Service time at each pickup and drop-off (s).
    service_s: Annotated[int, Field(ge=0, le=3600)] = 30
    #: A scheduled mission (pickup window) is released to its vehicle when its window
    #: opens within the travel to the pickup plus this margin (s); until then it stays in
    #: the vehicle's horizon.
    release_margin_s: Annotated[float, Field(ge=0, le=86_400)] = 120.0
    #: Scheduled missions whose window opens further ahead than this are not planned
    #: yet (s).
    plan_ahead_s: Annotated[float, Field(gt=0, le=7 * 86_400)] = 3600.0
    #: A robot without a mission below this charge goes to a free charging station.
    charge_below_pct: Annotated[float, Field(ge=0, le=100)] = 25.0
    #: A charging robot takes missions again above this.
    resume_above_pct: Annotated[float, Field(ge=0, le=100)] = 80.0
    #: A vehicle at or below this is never planned.
    reserve_pct: Annotated[float, Field(ge=0, le=100)] = 15.0
    #: A robot with an order, expected to move (AUTOMATIC, not paused, charging or in an
    #: action), whose position and last node do not change for this long is stuck: the
    #: vehicle_stuck alert, and its leg is given up (docs/dispatch.md). Seconds.
    stuck_after_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    #: A stuck robot gets no new work until it moves, or for this long at most (then it
    #: is tried again). Seconds.
    stuck_retry_s: Annotated[float, Field(ge=0, le=86_400)] = 300.0
    #: A critically low robot with the rider on board finishes the drop-off when it is at
    #: most this far (metres, straight line); otherwise the mission is held for an operator.
    critical_finish_within_m: Annotated[float, Field(ge=0, le=10_000)] = 150.0

    #: Drivers: how long a job offer stays open (seconds).
    offer_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    #: Drivers: a cancel_job not acknowledged within this is sent again (seconds)...
    command_ack_timeout_s: Annotated[float, Field(gt=0, le=600)] = 5.0
    #: ...at most this many sends in all, then reported.
    command_max_sends: Annotated[int, Field(ge=1, le=100)] = 4
    #: Robots: per manufacturer (as in the VDA 5050 topic), per kind of stop (pick, drop,
    #: charge), another action type and/or the fixed parameters its robots require.
    robot_actions: dict[str, dict[Literal["pick", "drop", "charge"], RobotActionSettings]] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _ordered(self) -> DispatchSettings:
        if not self.reserve_pct <= self.charge_below_pct <= self.resume_above_pct:
            raise ValueError("dispatch: need reserve_pct <= charge_below_pct <= resume_above_pct")
        return self


class LeadershipSettings(_Section):
    """Active/standby per facility: several daemons on one database, one active each.

    Each facility has a lease in PostgreSQL with a fencing token (docs/operations.md,
    "Running two daemons"). A lone daemon is active for every facility from its start.
    """

    enabled: bool = True
    #: A standby is active at most this long after the active daemon died (seconds). The
    #: lease lasts this minus one standby poll and a margin.
    takeover_s: Annotated[float, Field(ge=1, le=600)] = 10.0
    #: How often the active daemon renews its leases; 0: a third of the lease.
    renew_interval_s: Annotated[float, Field(ge=0, le=600)] = 0.0
    #: How often a standby tries to take a free or expired lease; 0: takeover_s / 10
    #: (at most 1 s).
    poll_interval_s: Annotated[float, Field(ge=0, le=60)] = 0.0
    #: Who this daemon is in the lease table; empty: ``hostname:pid:random`` (new at
    #: every start). Must differ between daemons.
    holder_id: Annotated[str, Field(max_length=200)] = ""
    #: A daemon restarted on the same machine takes its crashed predecessor's leases at
    #: once (the holder's pid no longer exists) instead of waiting for them to expire.
    #: Turn off where several daemons share one hostname but not one pid namespace.
    reclaim_dead_local: bool = True
    #: A takeover first waits this long at most for this daemon's spool to be flushed.
    spool_wait_s: Annotated[float, Field(ge=0, le=600)] = 30.0
    #: Facility keys this daemon takes at start. Empty: all of them. The others it takes
    #: only once they stayed free for takeover_s after its start: daemons started together
    #: with different lists split the facilities, each the standby of the others'.
    prefer: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _intervals(self) -> LeadershipSettings:
        if self.renew_interval_s and self.renew_interval_s * 2 >= self.takeover_s:
            raise ValueError("leadership: renew_interval_s must be under half of takeover_s")
        if self.poll_interval_s and self.poll_interval_s * 2 >= self.takeover_s:
            raise ValueError("leadership: poll_interval_s must be under half of takeover_s")
        return self


class MapSettings(_Section):
    """A facility map: the robot's local metric frame and where it sits on Earth."""

    map_id: Annotated[str, Field(min_length=1, max_length=128)]
    origin_lat: Annotated[float, Field(ge=-90, le=90)]
    origin_lon: Annotated[float, Field(ge=-180, le=180)]
    #: Angle from geographic east to the map's +x axis, counter-clockwise, in degrees.
    rotation_deg: Annotated[float, Field(ge=-360, le=360)] = 0.0

    def to_spec(self) -> MapSpec:
        """The core's frozen value of this map (:mod:`geo.facility`)."""
        return MapSpec(self.map_id, self.origin_lat, self.origin_lon, self.rotation_deg)


class PlaceSettings(_Section):
    """A named place operators can use as a pickup or dropoff."""

    name: Annotated[str, Field(min_length=1, max_length=128)]
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    #: Route-graph node the robots use for this place, if any.
    node_id: str | None = None

    def to_spec(self) -> PlaceSpec:
        """The core's frozen value of this place (:mod:`geo.facility`)."""
        return PlaceSpec(self.name, self.lat, self.lon, self.node_id)


class FacilitySettings(_Section):
    key: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    timezone: str = "UTC"
    #: VDA LIF files with the robots' route graph: ``fleetd:NAME`` names a file shipped in
    #: geo/maps, a relative path is relative to the configuration file (facility_layouts.py).
    layouts: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    #: GeoJSON LineStrings of the drivers' roads, same path rules; "" for none.
    roads: str = ""
    #: Drivers' travel: straight-line (geodesic) distance times this factor where no road
    #: graph covers a leg, at ``driver_speed_mps`` (geo.layout.drivers).
    driver_detour_factor: Annotated[float, Field(ge=1, le=5)] = 1.4
    driver_speed_mps: Annotated[float, Field(gt=0, le=40)] = 8.0
    maps: list[MapSettings] = Field(default_factory=list)
    places: list[PlaceSettings] = Field(default_factory=list)

    @property
    def id(self) -> uuid.UUID:
        """Deterministic UUID, so the same key names the same facility on every machine."""
        return facility_id(self.key)

    @functools.cached_property
    def spec(self) -> FacilitySpec:
        """The core's frozen value of this facility (:mod:`geo.facility`), built once."""
        return FacilitySpec(
            id=self.id,
            key=self.key,
            name=self.name,
            timezone=self.timezone,
            maps=tuple(m.to_spec() for m in self.maps),
            places=tuple(p.to_spec() for p in self.places),
        )

    @field_validator("places")
    @classmethod
    def _unique_places(cls, places: list[PlaceSettings]) -> list[PlaceSettings]:
        names = [p.name for p in places]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"place names must be unique, repeated: {sorted(dup)}")
        return places


@functools.lru_cache(maxsize=1024)
def facility_id(key: str) -> uuid.UUID:
    """The facility's UUID: a pure function of ``key``, memoised since
    :attr:`FacilitySettings.id` is read several times per API request."""
    return uuid.uuid5(FLEETD_NAMESPACE, f"facility:{key}")


def builtin_facilities() -> list[FacilitySettings]:
    """The demo campus shipped with the package, used when no facility is configured.

    A new list each call, of models parsed once per process (see :func:`_builtin_facilities`).
    """
    return list(_builtin_facilities())


@functools.cache
def _builtin_facilities() -> tuple[FacilitySettings, ...]:
    """The shipped map file, read and validated once.

    Cached because :attr:`Settings.effective_facilities` is read on every mission request:
    re-reading and re-parsing the TOML each time cost about a fifth of the daemon's CPU
    under a stream of creates. Safe to share: the file is package data that does not
    change while the process runs, and the models are frozen.
    """
    text = resources.files("geo").joinpath("maps/demo-campus.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    return tuple(FacilitySettings.model_validate(f) for f in data["facilities"])


class Settings(BaseSettings):
    """All of fleetd's configuration. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="FLEETD_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    fleet: FleetSettings = Field(default_factory=FleetSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    planner: PlannerSettings = Field(default_factory=PlannerSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    spool: SpoolSettings = Field(default_factory=SpoolSettings)
    leadership: LeadershipSettings = Field(default_factory=LeadershipSettings)
    facilities: list[FacilitySettings] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs; the environment must win over them.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        keys = [f.key for f in self.facilities]
        if len(set(keys)) != len(keys):
            raise ValueError("facility keys must be unique")
        map_ids = [m.map_id for f in self.facilities for m in f.maps]
        if len(set(map_ids)) != len(map_ids):
            raise ValueError("a map_id may belong to one facility only")
        if self.fleet.default_facility and self.fleet.default_facility not in keys and keys:
            raise ValueError(
                f"fleet.default_facility {self.fleet.default_facility!r} is not one of {keys}"
            )
        _check_vehicles(self)
        unknown = [k for k in self.leadership.prefer if k not in keys] if keys else []
        if unknown:
            raise ValueError(f"leadership.prefer names no configured facility: {unknown}")
        if self.daemon.environment is Environment.PRODUCTION:
            _check_production(self)
        return self

    @property
    def docs_enabled(self) -> bool:
        """Whether /docs is served (``api.docs``, else on outside production)."""
        if self.api.docs is not None:
            return self.api.docs
        return self.daemon.environment is not Environment.PRODUCTION

    # Convenience accessors --------------------------------------------------------------

    @property
    def effective_facilities(self) -> list[FacilitySettings]:
        """Configured facilities, or the built-in demo campus when none are."""
        return self.facilities or builtin_facilities()

    @property
    def facility_specs(self) -> tuple[FacilitySpec, ...]:
        """:attr:`effective_facilities` as the core's frozen values (:mod:`geo.facility`)."""
        return tuple(f.spec for f in self.effective_facilities)

    @property
    def default_facility(self) -> FacilitySettings:
        facilities = self.effective_facilities
        for f in facilities:
            if f.key == self.fleet.default_facility:
                return f
        return facilities[0]

    def facility_for_key(self, key: str) -> FacilitySettings:
        """The facility named ``key``; the default facility for ``""``."""
        for f in self.effective_facilities:
            if f.key == key:
                return f
        return self.default_facility

    @property
    def mqtt_client_id(self) -> str:
        return self.mqtt.client_id or f"fleetd-{self.daemon.instance_id}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) only reaches this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_vehicles(settings: Settings) -> None:
    """Configured vehicles: each once, in a configured facility, with a valid identity
    (robots: the check every received topic goes through)."""
    if not settings.fleet.vehicles:
        return
    facility_keys = [f.key for f in settings.effective_facilities]
    seen: set[tuple[str, str, str]] = set()
    for v in settings.fleet.vehicles:
        ident = (v.kind, v.manufacturer, v.serial)
        if ident in seen:
            raise ValueError(f"fleet.vehicles: {v.kind} {v.manufacturer}/{v.serial} twice")
        seen.add(ident)
        if v.facility and v.facility not in facility_keys:
            raise ValueError(
                f"fleet.vehicles: facility {v.facility!r} is not one of {facility_keys}"
            )
        if v.kind == "robot":
            problem = identity_problem(
                v.manufacturer, v.serial, strict=settings.fleet.strict_identities
            )
            if problem is not None:
                raise ValueError(f"fleet.vehicles: {problem}")


def _check_production(settings: Settings) -> None:
    """Refuse what must not run in production: no broker login, cleartext off this host.

    Every API route but the probes asks for a token, so "auth" on the API always holds;
    what a public bind needs in addition is TLS (in the process, or a proxy on loopback).
    """
    if settings.mqtt.username is None:
        raise ValueError("mqtt.username is required in production (broker auth)")
    if not is_loopback(settings.mqtt.host) and not settings.mqtt.tls:
        raise ValueError(
            f"mqtt.host {settings.mqtt.host!r} is not loopback: production needs mqtt.tls = true"
        )
    if not is_loopback(settings.api.host) and not settings.api.tls:
        raise ValueError(
            f"api.host {settings.api.host!r} is not loopback: production needs "
            "api.tls_cert_file and api.tls_key_file (or bind 127.0.0.1 behind a TLS proxy)"
        )


def _loc_to_key(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(top level)"


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read settings from ``path`` (or ``$FLEETD_CONFIG``), then apply ``FLEETD_*`` overrides.

    With neither, defaults apply. Raises :class:`ConfigError` naming each wrong key.
    """
    if path is None:
        path = os.environ.get(CONFIG_ENV_VAR) or None
    data: dict[str, Any] = {}
    source = "defaults and environment"
    if path is not None:
        p = Path(path)
        source = str(p)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(source, [("(file)", "configuration file not found")]) from exc
        except OSError as exc:
            raise ConfigError(source, [("(file)", f"cannot read: {exc.strerror}")]) from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, [("(file)", f"not valid TOML: {exc}")]) from exc
    try:
        return Settings(**data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = _loc_to_key(tuple(err["loc"]))
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling against configs/fleetd.example.toml)"
            elif _echoable(key, err.get("input")):
                msg = f"{msg} (got {err['input']!r})"
            problems.append((key, msg))
        raise ConfigError(source, problems) from exc


def state_dir(settings: Settings) -> str:
    """``daemon.state_dir``, else ``$STATE_DIRECTORY`` (systemd), else ``./.fleetd``."""
    configured = settings.daemon.state_dir or os.environ.get("STATE_DIRECTORY", "")
    # systemd may list several directories separated by ':'; fleetd asks for one.
    return configured.split(":")[0] if configured else ".fleetd"


def spool_path(settings: Settings) -> str:
    """The spool file: ``spool.path``, else ``<state dir>/spool-<instance id>.jsonl``."""
    name = f"spool-{settings.daemon.instance_id}.jsonl"
    return settings.spool.path or os.path.join(state_dir(settings), name)
