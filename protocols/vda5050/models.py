"""VDA 5050 v2.0 messages as pydantic models, faithful to the 2.0.0 JSON schemas.

Inbound (robot -> fleetd): :class:`State`, :class:`Connection`, :class:`Visualization`,
:class:`Factsheet`. Outbound (fleetd -> robot): :class:`Order`, :class:`InstantActions`.

Rules of thumb used throughout:

- Required in the schema is required here; optional fields default to ``None`` and are
  left out when serialising with ``exclude_none=True`` (see :func:`codec.encode`).
- Numeric bounds are copied from the schema, never invented: the schema is what a third
  party robot is tested against, so fleetd must not be stricter than it.
- Where the 2.0.0 schemas contradict the spec text, inbound models accept both and
  outbound models write what satisfies both (documented in docs/protocols/vda5050.md):
  ``actionStatus`` PAUSED, ``allowedDeviationXY``/``Xy``, instant ``actionType``/``actionName``.
- :class:`State` is decoded more than 10,000 times a second, so no model here has a
  Python-level validator except the timestamp's one-line UTC default.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from protocols.vda5050.base import (
    UINT32_MAX,
    ActionStatus,
    BlockingType,
    ConnectionState,
    ErrorLevel,
    EStop,
    InfoLevel,
    OperatingMode,
    OrientationType,
    Timestamp,
    VdaModel,
)
from protocols.vda5050.factsheet import Factsheet

__all__ = [
    "Action",
    "ActionParameter",
    "ActionState",
    "AgvPosition",
    "BatteryState",
    "BoundingBoxReference",
    "Connection",
    "ControlPoint",
    "Edge",
    "EdgeState",
    "Error",
    "ErrorReference",
    "Factsheet",
    "Info",
    "InfoReference",
    "InstantActions",
    "Load",
    "LoadDimensions",
    "Node",
    "NodePosition",
    "NodeState",
    "NodeStatePosition",
    "Order",
    "SafetyState",
    "State",
    "StateControlPoint",
    "StateTrajectory",
    "Trajectory",
    "Velocity",
    "Visualization",
]

# The schemas' bound for theta-like values (they write pi to 11 digits).
_PI = 3.14159265359
_PI_10 = 3.141592654  # allowedDeviationTheta uses a shorter pi in the schema

Uint32 = Annotated[int, Field(ge=0, le=UINT32_MAX)]
#: An identifier fleetd writes (orderId, nodeId, actionId, ...): never empty.
OutId = Annotated[str, Field(min_length=1)]
#: actionParameter.value: the schema allows array, boolean, number or string. ``bool``
#: comes before the numbers so that ``true`` stays a bool.
ParameterValue = list[Any] | bool | int | float | str


# --------------------------------------------------------------------------------------
# Shared objects


class ActionParameter(VdaModel):
    key: str
    value: ParameterValue


class Action(VdaModel):
    """An action on a node, an edge, or sent as an instant action."""

    # The instantActions 2.0.0 schema calls this field actionName while the spec text,
    # the order schema and the factsheet say actionType; read both, write actionType
    # (instant actions additionally mirror it as actionName, see InstantActions).
    action_type: str = Field(
        validation_alias=AliasChoices("actionType", "actionName"),
        serialization_alias="actionType",
    )
    action_id: str
    blocking_type: BlockingType
    action_description: str | None = None
    action_parameters: list[ActionParameter] | None = None


class ControlPoint(VdaModel):
    """NURBS control point in an order; ``weight`` defaults to 1.0 on the robot."""

    x: float
    y: float
    weight: float | None = None


class Trajectory(VdaModel):
    degree: int
    knot_vector: list[Annotated[float, Field(ge=0.0, le=1.0)]]
    control_points: list[ControlPoint]


# --------------------------------------------------------------------------------------
# Order (fleetd -> robot)


class NodePosition(VdaModel):
    x: float
    y: float
    map_id: str
    theta: Annotated[float, Field(ge=-_PI, le=_PI)] | None = None
    # Spec text: allowedDeviationXY; 2.0.0 schema: allowedDeviationXy (VDA5050 issue #229).
    allowed_deviation_xy: Annotated[float, Field(ge=0)] | None = Field(
        default=None,
        validation_alias=AliasChoices("allowedDeviationXY", "allowedDeviationXy"),
        serialization_alias="allowedDeviationXY",
    )
    allowed_deviation_theta: Annotated[float, Field(ge=-_PI_10, le=_PI_10)] | None = None
    map_description: str | None = None

    @model_serializer(mode="wrap")
    def _mirror_deviation(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Write the deviation under both spellings so robots built from the text and
        # robots generated from the schema both see it. Orders are rare; cost is moot.
        data: dict[str, Any] = handler(self)
        if "allowedDeviationXY" in data:  # only when serialising by alias
            data["allowedDeviationXy"] = data["allowedDeviationXY"]
        return data


class Node(VdaModel):
    node_id: OutId
    sequence_id: Uint32
    released: bool
    actions: list[Action]
    node_description: str | None = None
    node_position: NodePosition | None = None


class Edge(VdaModel):
    edge_id: OutId
    sequence_id: Uint32
    released: bool
    start_node_id: OutId
    end_node_id: OutId
    actions: list[Action]
    edge_description: str | None = None
    max_speed: float | None = None  # m/s
    max_height: float | None = None  # m
    min_height: float | None = None  # m
    orientation: Annotated[float, Field(ge=-_PI, le=_PI)] | None = None  # rad
    orientation_type: OrientationType | None = None
    direction: str | None = None
    rotation_allowed: bool | None = None
    max_rotation_speed: float | None = None  # rad/s
    trajectory: Trajectory | None = None
    length: float | None = None  # m


class Order(VdaModel):
    header_id: Uint32
    timestamp: Timestamp
    version: str
    manufacturer: str
    serial_number: str
    order_id: OutId
    order_update_id: Uint32
    nodes: list[Node]
    edges: list[Edge]
    zone_set_id: str | None = None


class InstantActions(VdaModel):
    header_id: Uint32
    timestamp: Timestamp
    version: str
    manufacturer: str
    serial_number: str
    actions: list[Action]

    @model_serializer(mode="wrap")
    def _mirror_action_name(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # The 2.0.0 instantActions schema requires actionName; the spec text and every
        # robot built from it read actionType. Writing both satisfies both.
        data: dict[str, Any] = handler(self)
        for action in data.get("actions", ()):
            if "actionType" in action:  # only when serialising by alias
                action["actionName"] = action["actionType"]
        return data


# --------------------------------------------------------------------------------------
# State (robot -> fleetd, the hot path)


class NodeStatePosition(VdaModel):
    """nodeState.nodePosition: in the state schema theta is required."""

    x: float
    y: float
    theta: float
    map_id: str


class NodeState(VdaModel):
    node_id: str
    sequence_id: int
    released: bool
    node_description: str | None = None
    node_position: NodeStatePosition | None = None


class StateControlPoint(VdaModel):
    """In the state schema a control point's weight is required."""

    x: float
    y: float
    weight: float


class StateTrajectory(VdaModel):
    degree: int
    knot_vector: list[Annotated[float, Field(ge=0.0, le=1.0)]]
    control_points: list[StateControlPoint]


class EdgeState(VdaModel):
    edge_id: str
    sequence_id: int
    released: bool
    edge_description: str | None = None
    trajectory: StateTrajectory | None = None


class AgvPosition(VdaModel):
    x: float  # m, map frame
    y: float  # m, map frame
    theta: float  # rad, counter-clockwise from the map's +x axis
    map_id: str
    position_initialized: bool
    map_description: str | None = None
    localization_score: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    deviation_range: float | None = None  # m


class Velocity(VdaModel):
    vx: float | None = None  # m/s, vehicle frame
    vy: float | None = None  # m/s, vehicle frame
    omega: float | None = None  # rad/s


class BoundingBoxReference(VdaModel):
    x: float
    y: float
    z: float
    theta: float | None = None


class LoadDimensions(VdaModel):
    length: float  # m
    width: float  # m
    height: float | None = None  # m


class Load(VdaModel):
    load_id: str | None = None
    load_type: str | None = None
    load_position: str | None = None
    bounding_box_reference: BoundingBoxReference | None = None
    load_dimensions: LoadDimensions | None = None
    weight: float | None = None  # kg


class ActionState(VdaModel):
    action_id: str
    action_status: ActionStatus
    action_type: str | None = None
    action_description: str | None = None
    result_description: str | None = None


class BatteryState(VdaModel):
    battery_charge: float  # percent
    charging: bool
    battery_voltage: float | None = None  # V
    battery_health: int | None = None  # percent
    reach: int | None = None  # m


class ErrorReference(VdaModel):
    reference_key: str
    reference_value: str


class Error(VdaModel):
    error_type: str
    error_level: ErrorLevel
    error_references: list[ErrorReference] | None = None
    error_description: str | None = None


class InfoReference(VdaModel):
    reference_key: str
    reference_value: str


class Info(VdaModel):
    info_type: str
    info_level: InfoLevel
    info_references: list[InfoReference] | None = None
    info_description: str | None = None


class SafetyState(VdaModel):
    e_stop: EStop
    field_violation: bool


class State(VdaModel):
    header_id: int
    timestamp: Timestamp
    version: str
    manufacturer: str
    serial_number: str
    order_id: str  # "" when the robot never had an order
    order_update_id: int
    last_node_id: str  # "" when unknown
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
    distance_since_last_node: float | None = None  # m
    agv_position: AgvPosition | None = None
    velocity: Velocity | None = None
    loads: list[Load] | None = None
    information: list[Info] | None = None


# --------------------------------------------------------------------------------------
# Visualization and connection (robot -> fleetd)


class Visualization(VdaModel):
    """Everything is optional in the schema, the header included."""

    header_id: int | None = None
    timestamp: Timestamp | None = None
    version: str | None = None
    manufacturer: str | None = None
    serial_number: str | None = None
    agv_position: AgvPosition | None = None
    velocity: Velocity | None = None


class Connection(VdaModel):
    header_id: int
    timestamp: Timestamp
    version: str
    manufacturer: str
    serial_number: str
    connection_state: ConnectionState
