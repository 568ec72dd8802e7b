"""What a vehicle reports, as plain values: the links translate wire messages into these.

The registry applies a report to a vehicle's record in one step
(:meth:`fleet.registry.FleetRegistry.apply_robot_state` and friends), so the rules of
what a report changes (status, dirty marks, change events) live in one place. Pure data.

Slotted but not frozen: one of these is built per message on the ingest hot path, and a
frozen dataclass's ``__init__`` (``object.__setattr__`` per field) costs about a
microsecond more per message. Treat them as read-only all the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet.model import DriverAvailability, GeoPosition, MapPose, OperatingMode, VehicleError


@dataclass(slots=True)
class Heard:
    """When and how a message arrived: the input of the liveness rules.

    ``sent_at`` is the time the vehicle wrote into the message (epoch seconds, None when
    unreadable); ``retained`` says the broker stored it earlier and replayed it.
    """

    received_at: float
    sent_at: float | None
    retained: bool = False


@dataclass(slots=True)
class RobotState:
    """One VDA 5050 ``state`` message, reduced to what the fleet keeps."""

    battery_pct: float
    charging: bool
    #: Order nodes left, or actions running.
    working: bool
    driving: bool
    paused: bool
    operating_mode: OperatingMode
    order_id: str | None
    order_update_id: int | None
    last_node_id: str | None
    errors: tuple[VehicleError, ...]
    speed_mps: float | None
    #: None when the robot is not localised (``positionInitialized`` false) or says nothing.
    pose: MapPose | None
    #: ``safetyState``: an e-stop engaged (any eStop but NONE) or a protective field violated.
    safety_stop: bool = False


@dataclass(slots=True)
class DriverState:
    """One driver-protocol ``status`` message, reduced to what the fleet keeps."""

    availability: DriverAvailability
    phone_battery_pct: float | None
    speed_mps: float | None
    #: The driver is on a job (the app names a mission).
    on_job: bool
    #: None while the phone has no fix.
    position: GeoPosition | None
