"""The VDA 5050 v2.0 robot link: every message a robot publishes, into the registry.

Runs inside the MQTT receive callback, so it is synchronous and does no I/O: it checks
size and topic, decodes and validates, checks the sender's identity, updates the
vehicle's record, buffers a telemetry row in its sink and publishes what changed about
the robot's work (node reached, action states, errors) as typed events. A message that
fails any check is counted by reason, logged (rate-limited) and dropped; nothing it
carried reaches the registry.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from dispatcher.config import Settings, UnknownVehiclePolicy
from dispatcher.links.rejections import Rejections
from dispatcher.links.robot_progress import Progress, progress_events
from dispatcher.links.vehicle import EventPublisher, TelemetrySink
from dispatcher.links.vehicle_events import OrderStateSeen
from dispatcher.metrics import MESSAGES_RECEIVED, VEHICLE_ERRORS_CUT
from dispatcher.storage.telemetry import TelemetryRow
from fleet.model import (
    ConnectionState,
    MapPose,
    OperatingMode,
    VehicleError,
    VehicleKey,
    VehicleKind,
)
from fleet.record import VehicleRecord
from fleet.registry import FleetRegistry
from fleet.reports import Heard, RobotState
from protocols.errors import MessageRejected, RejectReason
from protocols.vda5050 import codec, fast
from protocols.vda5050.base import VDA_VERSION
from protocols.vda5050.models import Connection, Factsheet, State, Visualization
from protocols.vda5050.topics import (
    INBOUND_TOPICS,
    Topic,
    VdaTopic,
    major_of_prefix,
    parse_topic,
)

log = structlog.get_logger(__name__)

#: Action statuses that mean the robot is still working on something.
_ACTIVE_ACTIONS = frozenset({"WAITING", "INITIALIZING", "RUNNING", "PAUSED"})
_CHARGING_ACTIONS = frozenset({"startCharging"})
_TOPIC_CACHE_SIZE = 100_000
#: Wire operating mode (either decoder's value) -> the fleet's; a dict look-up per state.
_MODES: dict[str, OperatingMode] = {m.value: m for m in OperatingMode}


@dataclass(slots=True)
class _Seen:
    """What the link last saw of one robot: one dict look-up per message finds it all."""

    #: (headerId, timestamp) of the last ``state`` taken.
    state: tuple[int, object] | None = None
    #: The order part of the last state, as compared (see ``_publish_order_state``).
    order_state: tuple[object, ...] | None = None
    #: The progress part of the last state, raw, and as published.
    progress_raw: tuple[object, ...] | None = None
    progress: Progress | None = None
    #: When its last telemetry row was taken (epoch seconds).
    telemetry_at: float | None = None


@dataclass(slots=True)
class _Route:
    """A topic name parsed once, with the robot it names: found once, then kept (the
    registry never forgets a vehicle), so a message costs no look-up by identity."""

    topic: VdaTopic
    key: VehicleKey
    rec: VehicleRecord | None = None
    seen: _Seen | None = None


class RobotLink:
    """Turns VDA 5050 messages into registry updates and telemetry rows."""

    LINK = "vda5050"

    def __init__(
        self,
        settings: Settings,
        registry: FleetRegistry,
        telemetry: TelemetrySink,
        events: EventPublisher,
    ) -> None:
        self._prefix = settings.mqtt.vda_prefix
        self._max_payload = settings.mqtt.max_payload_bytes
        self._register_unknown = settings.fleet.unknown_vehicles is UnknownVehiclePolicy.REGISTER
        self._strict_ids = settings.fleet.strict_identities
        self._max_errors = settings.fleet.max_errors_per_state
        self._max_error_text = settings.fleet.max_error_text
        self._registry = registry
        self._telemetry = telemetry
        self._telemetry_every = settings.database.telemetry_min_interval_s
        self._events = events
        #: vehicle id -> what the link last saw of it.
        self._seen: dict[object, _Seen] = {}
        self.rejections = Rejections(self.LINK)
        #: The interface's major version, from the topic prefix (``uagv/v2`` -> 2).
        self._versions = codec.VersionCheck(
            major_of_prefix(self._prefix, int(VDA_VERSION.partition(".")[0]))
        )
        # Each vehicle publishes on the same few topics: parse each name once.
        self._topics: dict[str, _Route] = {}
        self._received = {t: MESSAGES_RECEIVED.labels(self.LINK, t.value) for t in Topic}

    def handle(self, topic: str, payload: bytes, retained: bool) -> None:
        """Process one message from the broker; never raises for bad input."""
        now = time.time()
        vt: VdaTopic | None = None
        try:
            if len(payload) > self._max_payload:
                raise MessageRejected(
                    RejectReason.OVERSIZED, f"{len(payload)} bytes > {self._max_payload}"
                )
            route = self._topics.get(topic)
            if route is None:
                route = self._route(topic)
            vt = route.topic
            if vt.topic not in INBOUND_TOPICS:
                return  # master-control traffic (ours or another's) on the shared prefix
            counter = self._received.get(vt.topic)
            if counter is not None:
                counter.inc()
            msg = codec.decode(vt.topic, payload)
            codec.check_identity(msg, vt)
            self._versions.check(msg.version)
            rec, seen = route.rec, route.seen
            if rec is None or seen is None:
                rec = route.rec = self._vehicle(route.key, msg)
                seen = route.seen = self._seen.setdefault(rec.id, _Seen())
            pos = getattr(msg, "agv_position", None)
            if pos is not None and self._registry.foreign_map(rec, pos.map_id):
                raise MessageRejected(
                    RejectReason.FOREIGN_MAP, f"{rec.key.label} is pinned to another facility"
                )
            if isinstance(msg, fast.State | State):
                self._not_replayed(seen, msg)
                self._state(rec, seen, msg, now, retained)
            elif isinstance(msg, Connection):
                self._connection(rec, seen, msg, now, retained)
            elif isinstance(msg, fast.Visualization | Visualization):
                self._visualization(rec, seen, msg, now, retained)
            elif isinstance(msg, Factsheet):
                self._factsheet(rec, msg, now, retained)
        except MessageRejected as exc:
            # Logged once per robot and interval when the topic named one (a misconfigured
            # robot repeats its mistake on every message; another robot's is news).
            subject = f"{vt.manufacturer}/{vt.serial_number}" if vt is not None else None
            self.rejections.record(exc.reason, exc.detail, topic, subject=subject)

    def _route(self, topic: str) -> _Route:
        """Parse a topic name (raises MessageRejected) and cache it: each robot publishes
        on the same few topics, so a name is parsed once."""
        vt = parse_topic(self._prefix, topic, strict=self._strict_ids)
        if len(self._topics) >= _TOPIC_CACHE_SIZE:
            self._topics.clear()
        route = self._topics[topic] = _Route(
            vt, VehicleKey(VehicleKind.ROBOT, vt.manufacturer, vt.serial_number)
        )
        return route

    # --- per message type -------------------------------------------------------------

    def _vehicle(self, key: VehicleKey, msg: codec.InboundMessage) -> VehicleRecord:
        rec = self._registry.record_by_key(key)
        if rec is not None:
            return rec
        if not self._register_unknown:
            raise MessageRejected(RejectReason.UNKNOWN_VEHICLE, f"{key.label} is not registered")
        facility_id = None
        pos = getattr(msg, "agv_position", None)
        if pos is not None:
            facility_id = self._registry.facility_of_map(pos.map_id)
        return self._registry.register(key, facility_id=facility_id)

    @staticmethod
    def _heard(msg_time: datetime | None, now: float, retained: bool) -> Heard:
        return Heard(now, msg_time.timestamp() if msg_time is not None else None, retained)

    @staticmethod
    def _not_replayed(seen: _Seen, msg: State | fast.State) -> None:
        """Refuse a ``state`` seen before or older than the last one taken (duplicated,
        replayed or reordered by the network or the broker): it would change nothing or
        change something back. A headerId going down with a *later* timestamp is a robot
        that restarted its counter: taken."""
        last = seen.state
        stamp = msg.timestamp
        if last is not None:
            header, at = last
            if msg.header_id <= header and stamp <= at:  # type: ignore[operator]
                raise MessageRejected(
                    RejectReason.REPLAYED,
                    f"state headerId {msg.header_id} after {header}, not newer",
                )
        seen.state = (msg.header_id, stamp)

    def _state(
        self,
        rec: VehicleRecord,
        seen: _Seen,
        msg: State | fast.State,
        now: float,
        retained: bool,
    ) -> None:
        charging = bool(msg.battery_state.charging)
        working = bool(msg.node_states)
        for action in msg.action_states:
            if action.action_status in _ACTIVE_ACTIONS:
                working = True
                if action.action_type in _CHARGING_ACTIONS and action.action_status == "RUNNING":
                    charging = True
        speed = None
        if msg.velocity is not None and msg.velocity.vx is not None:
            speed = (msg.velocity.vx**2 + (msg.velocity.vy or 0.0) ** 2) ** 0.5
        pos = msg.agv_position
        state = RobotState(
            battery_pct=float(msg.battery_state.battery_charge),
            charging=charging,
            working=working,
            driving=bool(msg.driving),
            paused=bool(msg.paused),
            operating_mode=_MODES[msg.operating_mode],
            order_id=msg.order_id or None,
            order_update_id=msg.order_update_id,
            last_node_id=msg.last_node_id or None,
            errors=self._errors(msg.errors) if msg.errors else (),  # most states carry none
            speed_mps=speed,
            safety_stop=msg.safety_state.e_stop != "NONE" or bool(msg.safety_state.field_violation),
            pose=(
                MapPose(pos.map_id, pos.x, pos.y, pos.theta)
                if pos is not None and pos.position_initialized
                else None
            ),
        )
        self._registry.apply_robot_state(rec, state, self._heard(msg.timestamp, now, retained))
        self._telemetry_row(rec, seen, "state", now)
        self._publish_progress(rec, seen, msg, now)
        self._publish_order_state(rec, seen, msg, now)

    def _publish_order_state(
        self, rec: VehicleRecord, seen: _Seen, msg: State | fast.State, now: float
    ) -> None:
        """Publish :class:`OrderStateSeen` when the order part of the state changed."""
        # Hot path: one small tuple compare per state. nodeStates only shrink as lastNode
        # moves or grow with a new orderUpdateId, so their count stands for them here.
        raw = (
            msg.order_id,
            msg.order_update_id,
            msg.last_node_id,
            msg.last_node_sequence_id,
            len(msg.node_states),
            msg.driving,
            msg.safety_state.e_stop,
            msg.operating_mode,
        )
        if seen.order_state == raw:
            return
        seen.order_state = raw
        self._events.publish(
            OrderStateSeen(
                rec.id,
                now,
                msg.order_id or None,
                msg.order_update_id,
                msg.last_node_id or None,
                msg.last_node_sequence_id,
                tuple(n.node_id for n in msg.node_states),
                bool(msg.driving),
                str(msg.safety_state.e_stop),
                str(msg.operating_mode),
            )
        )

    def _errors(self, errors: Sequence[Any]) -> tuple[VehicleError, ...]:
        """A state's errors, bounded: at most ``fleet.max_errors_per_state`` of them, each
        text cut to ``fleet.max_error_text`` characters (both counted when they bite)."""
        cap, most = self._max_errors, self._max_error_text
        if len(errors) > cap:
            VEHICLE_ERRORS_CUT.labels("count").inc(len(errors) - cap)
        out = []
        for e in errors[:cap]:
            etype, text = e.error_type, e.error_description or ""
            if len(etype) > most or len(text) > most:
                VEHICLE_ERRORS_CUT.labels("text").inc()
            out.append(VehicleError(etype[:most], str(e.error_level), text[:most]))
        return tuple(out)

    def _publish_progress(
        self, rec: VehicleRecord, seen: _Seen, msg: State | fast.State, now: float
    ) -> None:
        """Publish what changed about the robot's work (nodes, actions, errors) as events."""
        # The common case, nothing changed, costs one tuple compare (the lists compare
        # element-wise in C); only a change builds a Progress and asks what it means.
        raw = (
            msg.order_id,
            msg.last_node_id,
            msg.last_node_sequence_id,
            msg.action_states,
            msg.errors,
        )
        if seen.progress_raw == raw:
            return
        seen.progress_raw = raw
        prev = seen.progress
        new = Progress(
            msg.order_id or None,
            msg.last_node_id or None,
            msg.last_node_sequence_id,
            tuple((a.action_id, a.action_type, a.action_status) for a in msg.action_states),
            self._errors(msg.errors) if msg.errors else (),
        )
        seen.progress = new
        for event in progress_events(rec.id, now, prev, new):
            self._events.publish(event)

    def _connection(
        self, rec: VehicleRecord, seen: _Seen, msg: Connection, now: float, retained: bool
    ) -> None:
        # A (re)connected robot's next state is news to the dispatch loop, even if it
        # says what the last one did: its orders are reconciled from it.
        seen.order_state = None
        self._registry.apply_connection(
            rec,
            ConnectionState(msg.connection_state),
            self._heard(msg.timestamp, now, retained),
        )

    def _visualization(
        self,
        rec: VehicleRecord,
        seen: _Seen,
        msg: Visualization | fast.Visualization,
        now: float,
        retained: bool,
    ) -> None:
        pos = msg.agv_position
        pose = None
        if pos is not None and pos.position_initialized:
            pose = MapPose(pos.map_id, pos.x, pos.y, pos.theta)
        self._registry.apply_robot_pose(rec, pose, self._heard(msg.timestamp, now, retained))
        if pose is not None:
            self._telemetry_row(rec, seen, "visualization", now)

    def _factsheet(self, rec: VehicleRecord, msg: Factsheet, now: float, retained: bool) -> None:
        spec = msg.type_specification
        self._registry.apply_factsheet(
            rec,
            max_payload_kg=float(spec.max_load_mass) if spec.max_load_mass is not None else None,
        )

    def _telemetry_row(self, rec: VehicleRecord, seen: _Seen, source: str, now: float) -> None:
        if self._telemetry_every > 0:
            last = seen.telemetry_at
            if last is not None and now - last < self._telemetry_every:
                return
            seen.telemetry_at = now
        pose = rec.map_pose
        self._telemetry.add(
            TelemetryRow(
                datetime.fromtimestamp(now, UTC),
                rec.id,
                rec.facility_id,
                source,
                None,  # lat/lon of robots are derived from x/y + map origin when queried
                None,
                pose.map_id if pose else None,
                pose.x if pose else None,
                pose.y if pose else None,
                pose.theta if pose else None,
                rec.battery_pct,
                rec.speed_mps,
            )
        )
