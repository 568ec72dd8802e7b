"""From a schema-valid LIF JSON document to :class:`LifDocument` (no checks of the graph)."""

from __future__ import annotations

from typing import Any

from geo.layout.model import (
    CHARGING_ACTION,
    Action,
    ControlPoint,
    Edge,
    EdgeTypeProperties,
    Layout,
    LifDocument,
    LoadRestriction,
    MetaInformation,
    Node,
    NodeTypeProperties,
    Station,
    Trajectory,
)

Json = dict[str, Any]


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _action(raw: Json) -> Action:
    return Action(
        action_type=raw["actionType"],
        blocking_type=raw["blockingType"],
        requirement_type=raw.get("requirementType"),
        description=raw.get("actionDescription"),
        parameters=tuple((p["key"], p["value"]) for p in raw.get("actionParameters", [])),
    )


def _node(raw: Json, layout_id: str) -> Node:
    props = tuple(
        NodeTypeProperties(
            vehicle_type_id=p["vehicleTypeId"],
            theta=_opt_float(p.get("theta")),
            actions=tuple(_action(a) for a in p.get("actions", [])),
        )
        for p in raw["vehicleTypeNodeProperties"]
    )
    pos = raw["nodePosition"]
    return Node(
        node_id=raw["nodeId"],
        layout_id=layout_id,
        x=float(pos["x"]),
        y=float(pos["y"]),
        map_id=raw.get("mapId"),
        name=raw.get("nodeName"),
        description=raw.get("nodeDescription"),
        properties=props,
    )


def _trajectory(raw: Json | None) -> Trajectory | None:
    if raw is None:
        return None
    return Trajectory(
        degree=int(raw.get("degree", 1)),
        knot_vector=tuple(float(k) for k in raw["knotVector"]),
        control_points=tuple(
            ControlPoint(float(c["x"]), float(c["y"]), float(c.get("weight", 1.0)))
            for c in raw["controlPoints"]
        ),
    )


def _edge_props(p: Json) -> EdgeTypeProperties:
    lr = p.get("loadRestriction")
    return EdgeTypeProperties(
        vehicle_type_id=p["vehicleTypeId"],
        rotation_allowed=bool(p["rotationAllowed"]),
        max_speed=_opt_float(p.get("maxSpeed")),
        max_height=_opt_float(p.get("maxHeight")),
        min_height=_opt_float(p.get("minHeight")),
        load_restriction=None
        if lr is None
        else LoadRestriction(lr["unloaded"], lr["loaded"], tuple(lr.get("loadSetNames", []))),
        trajectory=_trajectory(p.get("trajectory")),
        vehicle_orientation=_opt_float(p.get("vehicleOrientation")),
        orientation_type=p.get("orientationType", "TANGENTIAL"),
        actions=tuple(_action(a) for a in p.get("actions", [])),
    )


def _edge(raw: Json, layout_id: str) -> Edge:
    return Edge(
        edge_id=raw["edgeId"],
        layout_id=layout_id,
        start_node_id=raw["startNodeId"],
        end_node_id=raw["endNodeId"],
        name=raw.get("edgeName"),
        description=raw.get("edgeDescription"),
        properties=tuple(_edge_props(p) for p in raw["vehicleTypeEdgeProperties"]),
    )


def _station(raw: Json, layout_id: str, charging_nodes: set[str]) -> Station:
    pos = raw.get("stationPosition")
    nodes = tuple(raw["interactionNodeIds"])
    return Station(
        station_id=raw["stationId"],
        layout_id=layout_id,
        interaction_node_ids=nodes,
        name=raw.get("stationName"),
        description=raw.get("stationDescription"),
        height=float(raw.get("stationHeight", 0.0)),
        position=None
        if pos is None
        else (float(pos["x"]), float(pos["y"]), _opt_float(pos.get("theta"))),
        charging=any(n in charging_nodes for n in nodes),
    )


def _layout(raw: Json, charging_nodes: set[str]) -> Layout:
    lid = raw["layoutId"]
    return Layout(
        layout_id=lid,
        version=raw["layoutVersion"],
        nodes=tuple(_node(n, lid) for n in raw["nodes"]),
        edges=tuple(_edge(e, lid) for e in raw["edges"]),
        stations=tuple(_station(s, lid, charging_nodes) for s in raw.get("stations", [])),
        name=raw.get("layoutName"),
        level_id=raw.get("layoutLevelId"),
        description=raw.get("layoutDescription"),
    )


def _charging_nodes(document: Json) -> set[str]:
    """Ids of nodes offering ``startCharging`` to some vehicle type (a station's purpose
    is defined by the actions on its interaction nodes, LIF 8.3.13.1)."""
    return {
        n["nodeId"]
        for lay in document["layouts"]
        for n in lay["nodes"]
        for p in n["vehicleTypeNodeProperties"]
        if any(a["actionType"] == CHARGING_ACTION for a in p.get("actions", []))
    }


def parse_document(document: Json, source: str = "", digest: str = "") -> LifDocument:
    """Build the dataclasses of a document that already passed the schema check."""
    meta = document["metaInformation"]
    charging = _charging_nodes(document)
    return LifDocument(
        meta=MetaInformation(
            project_identification=meta["projectIdentification"],
            creator=meta["creator"],
            export_timestamp=meta["exportTimestamp"],
            lif_version=meta["lifVersion"],
        ),
        layouts=tuple(_layout(lay, charging) for lay in document["layouts"]),
        source=source,
        digest=digest,
    )
