"""Small LIF documents built in code, for tests that need one fault at a time."""

from __future__ import annotations

import json
from typing import Any

VT = "bot"


def node(
    nid: str, x: float, y: float, *, types: tuple[str, ...] = (VT,), charger: bool = False
) -> dict[str, Any]:
    props: list[dict[str, Any]] = [{"vehicleTypeId": t} for t in types]
    if charger:
        for p in props:
            p["actions"] = [{"actionType": "startCharging", "blockingType": "HARD"}]
    return {
        "nodeId": nid,
        "mapId": "m",
        "nodePosition": {"x": x, "y": y},
        "vehicleTypeNodeProperties": props,
    }


def edge(
    a: str,
    b: str,
    *,
    eid: str | None = None,
    speed: float | None = None,
    vt: str = VT,
    **extra: Any,
) -> dict[str, Any]:
    props: dict[str, Any] = {"vehicleTypeId": vt, "rotationAllowed": True, **extra}
    if speed is not None:
        props["maxSpeed"] = speed
    return {
        "edgeId": eid or f"{a}-{b}",
        "startNodeId": a,
        "endNodeId": b,
        "vehicleTypeEdgeProperties": [props],
    }


def two_way(a: str, b: str, **kw: Any) -> list[dict[str, Any]]:
    return [edge(a, b, **kw), edge(b, a, **kw)]


def station(sid: str, *nodes: str) -> dict[str, Any]:
    return {"stationId": sid, "interactionNodeIds": list(nodes)}


def document(
    nodes: list[dict[str, Any]],
    edges: list[dict[str, Any]],
    stations: list[dict[str, Any]] | None = None,
    *,
    layout_id: str = "L1",
    version: str = "1",
) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "layoutId": layout_id,
        "layoutVersion": version,
        "nodes": nodes,
        "edges": edges,
    }
    if stations is not None:
        layout["stations"] = stations
    return {
        "metaInformation": {
            "projectIdentification": "t",
            "creator": "tests",
            "exportTimestamp": "2026-01-01T00:00:00.00Z",
            "lifVersion": "1.0.0",
        },
        "layouts": [layout],
    }


def text(doc: dict[str, Any]) -> str:
    return json.dumps(doc)


def square() -> dict[str, Any]:
    """A 10 m square A(0,0) B(10,0) C(10,10) D(0,10), two-way all round, stations at A, C."""
    nodes = [node("A", 0, 0), node("B", 10, 0), node("C", 10, 10), node("D", 0, 10)]
    edges = [*two_way("A", "B"), *two_way("B", "C"), *two_way("C", "D"), *two_way("D", "A")]
    return document(nodes, edges, [station("SA", "A"), station("SC", "C")])
