"""Prometheus metrics shared across fleetd's packages.

Metric objects live in the default registry (``prometheus_client.REGISTRY``) as the
library intends; ``/metrics`` serves that registry. Tests read deltas, not absolutes.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_RECEIVED = Counter(
    "fleetd_messages_received_total",
    "Vehicle messages received, by link (vda5050 | driver) and topic.",
    ["link", "topic"],
)
MESSAGES_REJECTED = Counter(
    "fleetd_messages_rejected_total",
    "Vehicle messages rejected, by link and reason (see protocols.errors.RejectReason).",
    ["link", "reason"],
)
POSITION_FIXES_REJECTED = Counter(
    "fleetd_position_fixes_rejected_total",
    "Position fixes not used as a vehicle's position, by kind and reason (fleet/fixes.py).",
    ["kind", "reason"],
)
VEHICLES_ONLINE = Gauge("fleetd_vehicles_online", "Vehicles currently online, by kind.", ["kind"])
LIVENESS_CHANGES = Counter(
    "fleetd_liveness_changes_total", "Vehicles going online or offline, by change.", ["change"]
)
COMMANDS_SENT = Counter(
    "fleetd_vehicle_commands_total",
    "Commands sent to vehicles, by command and result (done | retry | impossible).",
    ["command", "result"],
)
DRIVER_EVENTS_IGNORED = Counter(
    "fleetd_driver_events_ignored_total",
    "Driver answers and trip events that matched no open offer or leg, by reason.",
    ["reason"],
)
DRIVER_COMMAND_ACKS = Counter(
    "fleetd_driver_command_acks_total",
    "Commands the dispatch engine sent drivers, by how they ended (accepted | rejected | unacked).",
    ["result"],
)
TELEMETRY_ROWS_WRITTEN = Counter("fleetd_telemetry_rows_written_total", "Telemetry rows COPYed.")
TELEMETRY_ROWS_DROPPED = Counter(
    "fleetd_telemetry_rows_dropped_total",
    "Telemetry rows dropped because the buffer was full (Postgres slow or away).",
)
TELEMETRY_ROWS_REJECTED = Counter(
    "fleetd_telemetry_rows_rejected_total",
    "Telemetry rows Postgres refused (no partition for their time, malformed) and set aside.",
)
TELEMETRY_BUFFERED = Gauge(
    "fleetd_telemetry_rows_buffered", "Telemetry rows waiting to be written."
)
DB_FLUSH_SECONDS = Histogram(
    "fleetd_db_flush_seconds",
    "Time to write one batch to Postgres, by batch kind.",
    ["batch"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DB_FLUSH_FAILURES = Counter(
    "fleetd_db_flush_failures_total", "Batches that failed to write, by batch kind.", ["batch"]
)
GEO_FLUSH_SECONDS = Histogram(
    "fleetd_redis_geo_flush_seconds",
    "Time to write one batch of live positions to Redis.",
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
AUDIT_ROWS_SEALED = Counter(
    "fleetd_audit_rows_sealed_total", "Audit rows hash-chained by this process's sealer."
)
AUDIT_SEAL_FAILURES = Counter(
    "fleetd_audit_seal_failures_total",
    "Audit sealing rounds that failed (Postgres away or refusing); the sealer retries.",
)
MQTT_SESSION_TAKEOVERS = Counter(
    "fleetd_mqtt_session_takeovers_total",
    "Times another client was found using fleetd's MQTT client id (repeated short sessions).",
)
VEHICLE_EVENTS = Counter(
    "fleetd_vehicle_events_total",
    "Typed vehicle events (offer answers, trip progress, acks, robot progress) published.",
    ["type"],
)
VEHICLE_EVENTS_DROPPED = Counter(
    "fleetd_vehicle_events_dropped_total",
    "Vehicle events dropped because their consumer fell a whole bus behind.",
)
DISPATCH_ALERTS = Counter(
    "fleetd_dispatch_alerts_total",
    "Missions held for an operator (rider on board, vehicle lost), by reason.",
    ["reason"],
)
DISPATCH_DOUBLE_HOLDS = Counter(
    "fleetd_dispatch_double_holds_refused_total",
    "Releases the engine's bookkeeping refused because a vehicle would hold two legs or a "
    "mission two vehicles (an engine bug; no order was sent). Should stay 0.",
)
DISPATCH_PLAN_SECONDS = Histogram(
    "fleetd_dispatch_plan_seconds",
    "Wall time of one dispatch plan (solved off the event loop: thread or worker process).",
    ["strategy"],
)
DISPATCH_LATE_MISSIONS = Gauge(
    "fleetd_dispatch_late_missions",
    "Scheduled missions the last full plan picks up after their window's end (late).",
)
VEHICLE_ERRORS_CUT = Counter(
    "fleetd_vehicle_errors_cut_total",
    "Robot errors dropped (reason=count: beyond fleet.max_errors_per_state in one state) "
    "or cut (reason=text: errorType/description beyond fleet.max_error_text).",
    ["reason"],
)
VEHICLE_HISTORY_SUPPRESSED = Counter(
    "fleetd_vehicle_history_suppressed_total",
    "vehicle_events rows not written: the vehicle exceeded fleet.vehicle_events_per_minute.",
    ["event"],
)
SPOOL_BYTES = Gauge("fleetd_spool_bytes", "Bytes held by the local spool (PostgreSQL away).")
SPOOL_ROWS = Gauge("fleetd_spool_rows", "Rows held by the local spool, waiting for PostgreSQL.")
SPOOL_CAPACITY_BYTES = Gauge(
    "fleetd_spool_capacity_bytes", "The spool's size limit (spool.max_bytes)."
)
SPOOLED = Counter(
    "fleetd_spooled_rows_total",
    "Rows written to the local spool because PostgreSQL was unreachable, by kind.",
    ["kind"],
)
SPOOL_FLUSHED = Counter(
    "fleetd_spool_flushed_rows_total",
    "Spooled rows written to PostgreSQL, by kind and result (applied | duplicate | refused).",
    ["kind", "result"],
)
SPOOL_FULL = Counter(
    "fleetd_spool_full_total",
    "Writes the full spool could not take, by what happened (refused | logged_only).",
    ["outcome"],
)
BROKER_DROPPED = Gauge(
    "fleetd_broker_dropped_messages",
    "The broker's own count of messages it dropped ($SYS/broker/publish/messages/dropped).",
)
MQTT_RECONNECTS = Counter(
    "fleetd_mqtt_reconnects_total", "Broker sessions lost and begun again after the first."
)
FACILITY_ACTIVE = Gauge(
    "fleetd_facility_active",
    "1 while this daemon is the facility's active dispatcher (holds its lease), else 0.",
    ["facility"],
)
LEADERSHIP_CHANGES = Counter(
    "fleetd_leadership_changes_total",
    "This daemon became active for a facility or stopped being so, by facility and new role.",
    ["facility", "to"],
)
FENCED_WRITES_REFUSED = Counter(
    "fleetd_fenced_writes_refused_total",
    "Mission writes of the dispatch engine refused because its fencing token was stale.",
)
