"""The driver link: messages from driver phones (docs/protocols/driver.md) into the registry.

Same rules as the robot link: synchronous, no I/O, every bad message counted by reason
and dropped. Offer responses, trip progress and command acks are published, once
validated, as typed events (:mod:`dispatcher.links.vehicle_events`) for the dispatch loop.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

import structlog

from dispatcher.config import Settings, UnknownVehiclePolicy
from dispatcher.links.rejections import Rejections
from dispatcher.links.vehicle import EventPublisher, TelemetrySink
from dispatcher.links.vehicle_events import CommandAcked, OfferAnswered, TripProgressed
from dispatcher.metrics import MESSAGES_RECEIVED, POSITION_FIXES_REJECTED
from dispatcher.storage.telemetry import TelemetryRow
from fleet.fixes import FixFilter, FixLimits, FixReason
from fleet.model import (
    ConnectionState,
    DriverAvailability,
    GeoPosition,
    VehicleKey,
    VehicleKind,
)
from fleet.record import VehicleRecord
from fleet.registry import FleetRegistry
from fleet.reports import DriverState, Heard
from protocols.driver import codec
from protocols.driver.models import (
    CommandAck,
    DriverConnection,
    DriverStatus,
    OfferResponse,
    TripProgress,
)
from protocols.driver.topics import INBOUND_TOPICS, DriverTopicName, parse_topic
from protocols.errors import MessageRejected, RejectReason

log = structlog.get_logger(__name__)


#: Between the facility key and the driver's own name in a driverId (``north.anna``).
#: Never a character of facility keys, always one of driverIds, and allowed in a
#: Mosquitto username: ':' is not (the password file's separator, refused by
#: mosquitto_passwd), so a ``north:anna`` login could not exist on the shipped broker.
LOGIN_FACILITY_SEPARATOR = "."


def login_facility(driver_id: str, facilities: Mapping[str, uuid.UUID]) -> uuid.UUID | None:
    """The facility a driver's login names (``<facility key>.<name>``), or None."""
    key, sep, name = driver_id.partition(LOGIN_FACILITY_SEPARATOR)
    return facilities.get(key) if sep and name else None


class DriverLink:
    """Turns driver-protocol messages into registry updates and telemetry rows."""

    LINK = "driver"

    def __init__(
        self,
        settings: Settings,
        registry: FleetRegistry,
        telemetry: TelemetrySink,
        events: EventPublisher,
    ) -> None:
        self._prefix = settings.mqtt.driver_prefix
        self._max_payload = settings.mqtt.max_payload_bytes
        self._register_unknown = settings.fleet.unknown_vehicles is UnknownVehiclePolicy.REGISTER
        #: Facility key -> id, when drivers' logins name their facility (else empty).
        self._login_facilities = (
            {f.key: f.id for f in settings.effective_facilities}
            if settings.fleet.driver_facility_from_login
            else {}
        )
        self._registry = registry
        self._telemetry = telemetry
        self.rejections = Rejections(self.LINK)
        self._received = {t: MESSAGES_RECEIVED.labels(self.LINK, t.value) for t in DriverTopicName}
        self._events = events
        f = settings.fleet
        #: Drivers' fixes judged before they become the position (fleet/fixes.py).
        self.fixes = FixFilter(
            FixLimits(
                max_speed_mps=f.driver_max_speed_mps,
                max_accuracy_m=f.driver_max_accuracy_m,
                unreliable_after=f.position_unreliable_fixes,
                window_s=f.position_unreliable_window_s,
            )
        )
        self._fixes_refused = {
            r: POSITION_FIXES_REJECTED.labels(VehicleKind.DRIVER.value, r.value) for r in FixReason
        }

    def handle(self, topic: str, payload: bytes, retained: bool) -> None:
        """Process one message from the broker; never raises for bad input."""
        now = time.time()
        subject: str | None = None
        try:
            if len(payload) > self._max_payload:
                raise MessageRejected(
                    RejectReason.OVERSIZED, f"{len(payload)} bytes > {self._max_payload}"
                )
            dt = parse_topic(self._prefix, topic)
            subject = dt.driver_id
            if dt.topic not in INBOUND_TOPICS:
                return  # fleetd's own offers and commands echoing back
            counter = self._received.get(dt.topic)
            if counter is not None:
                counter.inc()
            msg = codec.decode(dt.topic, payload)
            codec.check_identity(msg, dt)
            rec = self._vehicle(VehicleKey(VehicleKind.DRIVER, "", dt.driver_id))
            heard = Heard(now, msg.timestamp.timestamp(), retained)
            if isinstance(msg, DriverConnection):
                self._registry.apply_connection(rec, ConnectionState(msg.connection_state), heard)
                return
            if isinstance(msg, DriverStatus):
                self._status(rec, msg, heard)
                return
            self._registry.apply_sign_of_life(rec, heard)
            self._reply(rec, msg, now)
        except MessageRejected as exc:
            self.rejections.record(exc.reason, exc.detail, topic, subject=subject)

    def _reply(
        self, rec: VehicleRecord, msg: OfferResponse | TripProgress | CommandAck, now: float
    ) -> None:
        """Publish a driver's answer (to an offer, a job or a command) as a typed event."""
        if isinstance(msg, OfferResponse):
            self._events.publish(OfferAnswered(rec.id, now, msg.offer_id, msg.decision, msg.reason))
        elif isinstance(msg, TripProgress):
            self._events.publish(
                TripProgressed(rec.id, now, msg.mission_id, msg.event, msg.lat, msg.lon)
            )
        else:
            self._events.publish(
                CommandAcked(rec.id, now, msg.correlation_id, msg.result, msg.reason)
            )

    def _vehicle(self, key: VehicleKey) -> VehicleRecord:
        rec = self._registry.record_by_key(key)
        facility_id = login_facility(key.serial, self._login_facilities)
        if rec is not None:
            if facility_id is not None and not rec.facility_pinned:
                self._registry.pin(rec, facility_id)  # stored before logins named it
            return rec
        if facility_id is not None:
            return self._registry.register(key, facility_id=facility_id)
        if not self._register_unknown:
            raise MessageRejected(
                RejectReason.UNKNOWN_VEHICLE, f"driver {key.serial} is not registered"
            )
        return self._registry.register(key)

    def unreliable_positions(self) -> frozenset[uuid.UUID]:
        """Drivers whose fixes keep being refused (the ``position_unreliable`` alert)."""
        return self.fixes.unreliable(time.time())

    def _status(self, rec: VehicleRecord, msg: DriverStatus, heard: Heard) -> None:
        position = (
            GeoPosition(msg.lat, msg.lon, msg.heading_deg, msg.accuracy_m)
            if msg.lat is not None and msg.lon is not None
            else None
        )
        if position is not None:
            refused = self.fixes.take(rec.id, position, heard.received_at)
            if refused is not None:
                # Not the driver's position: the last plausible one stays (in the registry
                # and the Redis GEO index); the rest of the status is taken.
                self._fixes_refused[refused].inc()
                position = None
        state = DriverState(
            availability=DriverAvailability(msg.availability),
            phone_battery_pct=msg.phone_battery_pct,
            speed_mps=msg.speed_mps,
            on_job=msg.mission_id is not None,
            position=position,
        )
        self._registry.apply_driver_status(rec, state, heard)
        if state.position is None:
            return  # no (plausible) fix: liveness and availability only
        now = heard.received_at
        self._telemetry.add(
            TelemetryRow(
                datetime.fromtimestamp(now, UTC),
                rec.id,
                rec.facility_id,
                "driver",
                msg.lat,
                msg.lon,
                None,
                None,
                None,
                None,
                msg.phone_battery_pct,
                msg.speed_mps,
            )
        )
