"""The VDA 5050 v2.0 factsheet (section 7): what a robot type can do.

The 2.0.0 ``factsheet.schema`` puts its property definitions at the top level instead of
under ``properties``, so as published it checks only that the nine required keys exist.
These models follow the structure the schema *meant* (and the spec text describes);
tests validate against a repaired copy of the schema. Where the schema and the text
disagree the model accepts both (typos ``maxWeigth``/``PHYSICAL_LINDE_GUIDED``, the
``description`` fields typed as numbers, ``localizationParameters`` as integer vs object).

fleetd reads the factsheet once per robot for capabilities; nothing here is hot.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import AliasChoices, Field

from protocols.vda5050.base import Timestamp, VdaModel

__all__ = [
    "ActionParameterDefinition",
    "ActionScope",
    "AgvAction",
    "AgvClass",
    "AgvGeometry",
    "AgvKinematic",
    "Envelope2d",
    "Envelope3d",
    "Factsheet",
    "LoadSet",
    "LoadSpecification",
    "MaxArrayLens",
    "MaxStringLens",
    "OptionalParameter",
    "PhysicalParameters",
    "PolygonPoint",
    "ProtocolFeatures",
    "ProtocolLimits",
    "Support",
    "Timing",
    "TypeSpecification",
    "ValueDataType",
    "WheelDefinition",
    "WheelPosition",
    "WheelType",
]


class AgvKinematic(StrEnum):
    DIFF = "DIFF"
    OMNI = "OMNI"
    THREEWHEEL = "THREEWHEEL"


class AgvClass(StrEnum):
    FORKLIFT = "FORKLIFT"
    CONVEYOR = "CONVEYOR"
    TUGGER = "TUGGER"
    CARRIER = "CARRIER"


class Support(StrEnum):
    SUPPORTED = "SUPPORTED"
    REQUIRED = "REQUIRED"


class ActionScope(StrEnum):
    INSTANT = "INSTANT"
    NODE = "NODE"
    EDGE = "EDGE"


class ValueDataType(StrEnum):
    BOOL = "BOOL"
    NUMBER = "NUMBER"
    INTEGER = "INTEGER"
    FLOAT = "FLOAT"
    STRING = "STRING"
    OBJECT = "OBJECT"
    ARRAY = "ARRAY"


class WheelType(StrEnum):
    DRIVE = "DRIVE"
    CASTER = "CASTER"
    FIXED = "FIXED"
    MECANUM = "MECANUM"


class TypeSpecification(VdaModel):
    series_name: str
    agv_kinematic: AgvKinematic
    agv_class: AgvClass
    max_load_mass: float = Field(ge=0)  # kg
    # The text calls these "example values" (NATURAL, REFLECTOR, ...; AUTONOMOUS, ...)
    # and the schema misspells PHYSICAL_LINE_GUIDED; kept as plain strings.
    localization_types: list[str]
    navigation_types: list[str]
    series_description: str | None = None


class PhysicalParameters(VdaModel):
    speed_min: float  # m/s
    speed_max: float  # m/s
    acceleration_max: float  # m/s^2
    deceleration_max: float  # m/s^2
    height_max: float  # m
    width: float  # m
    length: float  # m
    height_min: float | None = None  # m


class MaxStringLens(VdaModel):
    msg_len: int | None = None
    topic_serial_len: int | None = None
    topic_elem_len: int | None = None
    id_len: int | None = None
    id_numerical_only: bool | None = None
    enum_len: int | None = None
    load_id_len: int | None = None


class MaxArrayLens(VdaModel):
    """Array limits; the wire keys contain dots (``order.nodes``). 0 or absent: no limit."""

    order_nodes: int | None = Field(default=None, alias="order.nodes")
    order_edges: int | None = Field(default=None, alias="order.edges")
    node_actions: int | None = Field(default=None, alias="node.actions")
    edge_actions: int | None = Field(default=None, alias="edge.actions")
    actions_action_parameters: int | None = Field(default=None, alias="actions.actionsParameters")
    instant_actions: int | None = Field(default=None, alias="instantActions")
    trajectory_knot_vector: int | None = Field(default=None, alias="trajectory.knotVector")
    trajectory_control_points: int | None = Field(default=None, alias="trajectory.controlPoints")
    state_node_states: int | None = Field(default=None, alias="state.nodeStates")
    state_edge_states: int | None = Field(default=None, alias="state.edgeStates")
    state_loads: int | None = Field(default=None, alias="state.loads")
    state_action_states: int | None = Field(default=None, alias="state.actionStates")
    state_errors: int | None = Field(default=None, alias="state.errors")
    # Schema: "state.information"; text: "state.informations".
    state_information: int | None = Field(
        default=None,
        validation_alias=AliasChoices("state.information", "state.informations"),
        serialization_alias="state.information",
    )
    error_error_references: int | None = Field(default=None, alias="error.errorReferences")
    information_info_references: int | None = Field(
        default=None,
        validation_alias=AliasChoices("information.infoReferences", "informations.infoReferences"),
        serialization_alias="information.infoReferences",
    )


class Timing(VdaModel):
    min_order_interval: float  # s
    min_state_interval: float  # s
    default_state_interval: float | None = None  # s
    visualization_interval: float | None = None  # s


class ProtocolLimits(VdaModel):
    max_string_lens: MaxStringLens
    max_array_lens: MaxArrayLens
    timing: Timing


class OptionalParameter(VdaModel):
    parameter: str
    support: Support
    description: str | None = None


class ActionParameterDefinition(VdaModel):
    key: str
    value_data_type: ValueDataType
    description: str | None = None
    is_optional: bool | None = None


class AgvAction(VdaModel):
    action_type: str
    action_scopes: list[ActionScope]
    action_description: str | None = None
    action_parameters: list[ActionParameterDefinition] | None = None
    result_description: str | None = None


class ProtocolFeatures(VdaModel):
    optional_parameters: list[OptionalParameter]
    agv_actions: list[AgvAction]


class WheelPosition(VdaModel):
    x: float  # m
    y: float  # m
    theta: float | None = None  # rad


class WheelDefinition(VdaModel):
    type: WheelType
    is_active_driven: bool
    is_active_steered: bool
    position: WheelPosition
    diameter: float  # m
    width: float  # m
    center_displacement: float | None = None  # m
    constraints: str | None = None


class PolygonPoint(VdaModel):
    x: float  # m
    y: float  # m


class Envelope2d(VdaModel):
    set: str
    polygon_points: list[PolygonPoint]
    description: str | None = None


class Envelope3d(VdaModel):
    set: str
    format: str
    data: dict[str, Any] | None = None
    url: str | None = None
    # The schema types this description as integer, the text as string.
    description: str | int | None = None


class AgvGeometry(VdaModel):
    wheel_definitions: list[WheelDefinition] | None = None
    envelopes2d: list[Envelope2d] | None = None
    envelopes3d: list[Envelope3d] | None = None


class LoadSetBoundingBoxReference(VdaModel):
    x: float
    y: float
    z: float
    theta: float | None = None  # the schema says integer; any number is accepted


class LoadSetDimensions(VdaModel):
    length: float
    width: float
    height: float | None = None


class LoadSet(VdaModel):
    set_name: str
    load_type: str
    load_positions: list[str] | None = None
    bounding_box_reference: LoadSetBoundingBoxReference | None = None
    load_dimensions: LoadSetDimensions | None = None
    # Schema: maxWeigth (sic); text: maxWeight.
    max_weight: float | None = Field(
        default=None,
        validation_alias=AliasChoices("maxWeight", "maxWeigth"),
        serialization_alias="maxWeight",
    )
    min_loadhandling_height: float | None = None
    max_loadhandling_height: float | None = None
    min_loadhandling_depth: float | None = None
    max_loadhandling_depth: float | None = None
    min_loadhandling_tilt: float | None = None
    max_loadhandling_tilt: float | None = None
    agv_speed_limit: float | None = None
    agv_acceleration_limit: float | None = None
    agv_deceleration_limit: float | None = None
    pick_time: float | None = None  # s
    drop_time: float | None = None  # s
    # The schema types this description as number, the text as string.
    description: str | float | None = None


class LoadSpecification(VdaModel):
    load_positions: list[str] | None = None
    load_sets: list[LoadSet] | None = None


class Factsheet(VdaModel):
    version: str
    manufacturer: str
    serial_number: str
    type_specification: TypeSpecification
    physical_parameters: PhysicalParameters
    protocol_limits: ProtocolLimits
    protocol_features: ProtocolFeatures
    agv_geometry: AgvGeometry
    load_specification: LoadSpecification
    # Header fields are optional for the factsheet (section 7.1.2).
    header_id: int | None = Field(default=None, ge=0)
    timestamp: Timestamp | None = None
    # The schema says integer, the text says JSON object; both are accepted, unused.
    localization_parameters: dict[str, Any] | int | None = None
