"""The receive fast path: ``state`` and ``visualization`` decoded with msgspec.

Robots send ``state`` (and often ``visualization``) several times a second each, so a
thousand robots mean >10,000 messages/s through one Python process. pydantic's
``model_validate_json`` costs 10-14 µs per ``state`` on this hardware, msgspec 2-4 µs
(docs/architecture.md, MEASURED.md). The pydantic models in :mod:`.models` stay the
reference: they define what a valid message is, they build what fleetd sends, and they
judge every message this module does not accept.

The contract with :mod:`.models`, checked by property tests in
``tests/unit/protocols/test_vda5050_fast.py``:

- Whatever these structs accept, the pydantic model accepts too, with the same values
  (field by field). They are never more lenient: same required fields, same types, the
  same bounds, no NaN or infinity. One tolerated difference: a timestamp with more than six
  fractional digits is rounded to the microsecond here and truncated there.
- They may be stricter (integers beyond 64 bits, unusual timestamp spellings). A message
  they refuse goes to the pydantic model, whose verdict and error text are final; so the
  fast path changes the speed, never the outcome.

Field names are Python's; the wire names are camelCase (``rename="camel"``), the only
spelling robots send and the only one the reference decoder accepts on the wire.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import msgspec

# The reference models' enumerations: decoded values are the very same enum members.
from protocols.vda5050.base import ActionStatus, ErrorLevel, EStop, InfoLevel, OperatingMode

#: Finite floats only: JSON has no NaN/Infinity, and a number like 1e400 overflows to inf.
Finite = Annotated[float, msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)]
UnitInterval = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class _Struct(msgspec.Struct, rename="camel", forbid_unknown_fields=False):
    """Base: camelCase on the wire, unknown (vendor) fields skipped.

    Not frozen, so ``__post_init__`` can make a timestamp aware; nothing keeps these
    objects beyond the message they came in.
    """


class NodeStatePosition(_Struct):
    x: Finite
    y: Finite
    theta: Finite
    map_id: str


class NodeState(_Struct):
    node_id: str
    sequence_id: int
    released: bool
    node_description: str | None = None
    node_position: NodeStatePosition | None = None


class StateControlPoint(_Struct):
    x: Finite
    y: Finite
    weight: Finite


class StateTrajectory(_Struct):
    degree: int
    knot_vector: list[UnitInterval]
    control_points: list[StateControlPoint]


class EdgeState(_Struct):
    edge_id: str
    sequence_id: int
    released: bool
    edge_description: str | None = None
    trajectory: StateTrajectory | None = None


class AgvPosition(_Struct):
    x: Finite
    y: Finite
    theta: Finite
    map_id: str
    position_initialized: bool
    map_description: str | None = None
    localization_score: UnitInterval | None = None
    deviation_range: Finite | None = None


class Velocity(_Struct):
    vx: Finite | None = None
    vy: Finite | None = None
    omega: Finite | None = None


class BoundingBoxReference(_Struct):
    x: Finite
    y: Finite
    z: Finite
    theta: Finite | None = None


class LoadDimensions(_Struct):
    length: Finite
    width: Finite
    height: Finite | None = None


class Load(_Struct):
    load_id: str | None = None
    load_type: str | None = None
    load_position: str | None = None
    bounding_box_reference: BoundingBoxReference | None = None
    load_dimensions: LoadDimensions | None = None
    weight: Finite | None = None


class ActionState(_Struct):
    action_id: str
    action_status: ActionStatus
    action_type: str | None = None
    action_description: str | None = None
    result_description: str | None = None


class BatteryState(_Struct):
    battery_charge: Finite
    charging: bool
    battery_voltage: Finite | None = None
    battery_health: int | None = None
    reach: int | None = None


class ErrorReference(_Struct):
    reference_key: str
    reference_value: str


class Error(_Struct):
    error_type: str
    error_level: ErrorLevel
    error_references: list[ErrorReference] | None = None
    error_description: str | None = None


class InfoReference(_Struct):
    reference_key: str
    reference_value: str


class Info(_Struct):
    info_type: str
    info_level: InfoLevel
    info_references: list[InfoReference] | None = None
    info_description: str | None = None


class SafetyState(_Struct):
    e_stop: EStop
    field_violation: bool


def _utc(value: datetime) -> datetime:
    # Section 6.4: timestamps are UTC; one without an offset means UTC (as in .base).
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class State(_Struct):
    """``state``: mirrors :class:`protocols.vda5050.models.State` field for field."""

    header_id: int
    timestamp: datetime
    version: str
    manufacturer: str
    serial_number: str
    order_id: str
    order_update_id: int
    last_node_id: str
    last_node_sequence_id: int
    node_states: list[NodeState]
    edge_states: list[EdgeState]
    driving: bool
    action_states: list[ActionState]
    battery_state: BatteryState
    operating_mode: OperatingMode
    errors: list[Error]
    safety_state: SafetyState
    zone_set_id: str | None = None
    paused: bool | None = None
    new_base_request: bool | None = None
    distance_since_last_node: Finite | None = None
    agv_position: AgvPosition | None = None
    velocity: Velocity | None = None
    loads: list[Load] | None = None
    information: list[Info] | None = None

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None:
            self.timestamp = _utc(self.timestamp)


class Visualization(_Struct):
    """``visualization``: everything optional, the header included."""

    header_id: int | None = None
    timestamp: datetime | None = None
    version: str | None = None
    manufacturer: str | None = None
    serial_number: str | None = None
    agv_position: AgvPosition | None = None
    velocity: Velocity | None = None

    def __post_init__(self) -> None:
        if self.timestamp is not None and self.timestamp.tzinfo is None:
            self.timestamp = _utc(self.timestamp)


_state_decoder = msgspec.json.Decoder(State)
_visualization_decoder = msgspec.json.Decoder(Visualization)


def decode_state(payload: bytes) -> State | None:
    """The message as a :class:`State`, or ``None`` if the fast path does not accept it."""
    try:
        return _state_decoder.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        # RecursionError: nesting beyond msgspec's depth limit (a hostile vendor field).
        # pydantic's parser has its own limit and gives the verdict (malformed_json).
        return None


def decode_visualization(payload: bytes) -> Visualization | None:
    """The message as a :class:`Visualization`, or ``None`` if not accepted here."""
    try:
        return _visualization_decoder.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        # RecursionError: nesting beyond msgspec's depth limit (a hostile vendor field).
        # pydantic's parser has its own limit and gives the verdict (malformed_json).
        return None
