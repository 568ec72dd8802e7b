"""Hand-made, realistic VDA 5050 v2.0 messages as a wheelchair robot would send them.

Every one of them is valid against the published 2.0.0 schemas (checked in
test_vda5050_schema.py). Functions return fresh dicts, so tests may mutate them.
"""

from __future__ import annotations

import json
from typing import Any


def _header(header_id: int = 1042) -> dict[str, Any]:
    return {
        "headerId": header_id,
        "timestamp": "2024-05-01T12:00:00.12Z",
        "version": "2.0.0",
        "manufacturer": "WheelCo",
        "serialNumber": "WC-0001",
    }


def state_small() -> dict[str, Any]:
    """A driving robot between orders' nodes, ~650 bytes: the ingest benchmark's message."""
    return {
        **_header(),
        "orderId": "order-7f3a91",
        "orderUpdateId": 3,
        "lastNodeId": "ward-a",
        "lastNodeSequenceId": 4,
        "nodeStates": [],
        "edgeStates": [],
        "driving": True,
        "paused": False,
        "agvPosition": {
            "x": 123.456,
            "y": -45.678,
            "theta": 1.5708,
            "mapId": "campus",
            "positionInitialized": True,
        },
        "velocity": {"vx": 1.2, "vy": 0.0, "omega": 0.05},
        "actionStates": [{"actionId": "a1b2c3d4", "actionType": "pick", "actionStatus": "RUNNING"}],
        "batteryState": {"batteryCharge": 87.5, "charging": False},
        "operatingMode": "AUTOMATIC",
        "errors": [],
        "safetyState": {"eStop": "NONE", "fieldViolation": False},
    }


def state_with_route(n: int = 10) -> dict[str, Any]:
    """A robot with ``n`` node, edge and action states still ahead of it."""
    msg = state_small()
    msg["nodeStates"] = [
        {
            "nodeId": f"node-{i}",
            "sequenceId": 2 * i,
            "released": i < n // 2,
            "nodePosition": {"x": 1.5 * i, "y": 2.5 * i, "theta": 0.1, "mapId": "campus"},
        }
        for i in range(n)
    ]
    msg["edgeStates"] = [
        {"edgeId": f"edge-{i}", "sequenceId": 2 * i + 1, "released": i < n // 2} for i in range(n)
    ]
    msg["actionStates"] = [
        {"actionId": f"act-{i}", "actionType": "drop", "actionStatus": "WAITING"} for i in range(n)
    ]
    return msg


def state_full() -> dict[str, Any]:
    """Every optional field of the state schema present at least once."""
    msg = state_with_route(2)
    msg.update(
        zoneSetId="campus-zones-3",
        newBaseRequest=True,
        distanceSinceLastNode=3.25,
        loads=[
            {
                "loadId": "chair-42",
                "loadType": "wheelchair",
                "loadPosition": "front",
                "boundingBoxReference": {"x": 0.1, "y": 0.0, "z": 0.3, "theta": 0.0},
                "loadDimensions": {"length": 1.1, "width": 0.7, "height": 1.0},
                "weight": 95.0,
            }
        ],
        information=[
            {
                "infoType": "passengerSeated",
                "infoLevel": "INFO",
                "infoDescription": "seat sensor closed",
                "infoReferences": [{"referenceKey": "loadId", "referenceValue": "chair-42"}],
            }
        ],
        errors=[
            {
                "errorType": "orderUpdateError",
                "errorLevel": "WARNING",
                "errorDescription": "lower orderUpdateId than current",
                "errorReferences": [
                    {"referenceKey": "orderId", "referenceValue": "order-7f3a91"},
                    {"referenceKey": "orderUpdateId", "referenceValue": "2"},
                ],
            }
        ],
    )
    msg["agvPosition"].update(
        mapDescription="ground floor", localizationScore=0.97, deviationRange=0.05
    )
    msg["batteryState"].update(batteryVoltage=48.2, batteryHealth=96, reach=12000)
    msg["nodeStates"][0]["nodeDescription"] = "corridor B"
    msg["edgeStates"][0].update(
        edgeDescription="ramp",
        trajectory={
            "degree": 1,
            "knotVector": [0.0, 0.0, 1.0, 1.0],
            "controlPoints": [
                {"x": 0.0, "y": 0.0, "weight": 1.0},
                {"x": 1.5, "y": 2.5, "weight": 1.0},
            ],
        },
    )
    msg["actionStates"][0].update(actionDescription="drop at ward", resultDescription="ok")
    return msg


def state_line_guided_idle() -> dict[str, Any]:
    """A robot that cannot localise (no agvPosition) and has no order yet."""
    msg = state_small()
    del msg["agvPosition"], msg["velocity"], msg["paused"]
    msg.update(orderId="", orderUpdateId=0, lastNodeId="", lastNodeSequenceId=0, driving=False)
    msg["actionStates"] = []
    msg["operatingMode"] = "MANUAL"
    msg["safetyState"] = {"eStop": "MANUAL", "fieldViolation": True}
    return msg


def state_with_vendor_extras() -> dict[str, Any]:
    """A third-party robot adding its own fields at several levels."""
    msg = state_small()
    msg["acmeDiagnostics"] = {"motorTempC": [41.5, 42.0], "firmware": "7.3.1"}
    msg["agvPosition"]["acmeFloor"] = 0
    msg["batteryState"]["acmeCycles"] = 512
    msg["safetyState"]["acmeBumper"] = "OK"
    return msg


def connection(state: str = "ONLINE") -> dict[str, Any]:
    return {**_header(7), "connectionState": state}


def visualization() -> dict[str, Any]:
    return {
        **_header(99_001),
        "agvPosition": {
            "x": 10.0,
            "y": 20.0,
            "theta": -3.1,
            "mapId": "campus",
            "positionInitialized": True,
            "localizationScore": 1.0,
            "deviationRange": 0.02,
        },
        "velocity": {"vx": 0.8, "vy": 0.0, "omega": -0.1},
    }


def factsheet() -> dict[str, Any]:
    """A wheelchair transport robot's factsheet, as the text (and the intended schema) has it."""
    return {
        "headerId": 1,
        "timestamp": "2024-05-01T08:00:00.00Z",
        "version": "2.0.0",
        "manufacturer": "WheelCo",
        "serialNumber": "WC-0001",
        "typeSpecification": {
            "seriesName": "WheelCo Porter 2",
            "seriesDescription": "autonomous wheelchair transporter",
            "agvKinematic": "DIFF",
            "agvClass": "CARRIER",
            "maxLoadMass": 180.0,
            "localizationTypes": ["NATURAL"],
            "navigationTypes": ["AUTONOMOUS"],
        },
        "physicalParameters": {
            "speedMin": 0.05,
            "speedMax": 1.4,
            "accelerationMax": 0.5,
            "decelerationMax": 1.0,
            "heightMin": 0.35,
            "heightMax": 1.2,
            "width": 0.8,
            "length": 1.3,
        },
        "protocolLimits": {
            "maxStringLens": {"msgLen": 65536, "idLen": 64, "idNumericalOnly": False},
            "maxArrayLens": {"order.nodes": 100, "order.edges": 99, "state.information": 10},
            "timing": {"minOrderInterval": 0.5, "minStateInterval": 0.1, "defaultStateInterval": 1},
        },
        "protocolFeatures": {
            "optionalParameters": [
                {"parameter": "order.nodes.nodePosition.theta", "support": "SUPPORTED"}
            ],
            "agvActions": [
                {"actionType": "startPause", "actionScopes": ["INSTANT"]},
                {"actionType": "stopPause", "actionScopes": ["INSTANT"]},
                {"actionType": "cancelOrder", "actionScopes": ["INSTANT"]},
                {
                    "actionType": "startCharging",
                    "actionScopes": ["INSTANT", "NODE"],
                    "actionParameters": [
                        {"key": "chargerId", "valueDataType": "STRING", "isOptional": True}
                    ],
                },
            ],
        },
        "agvGeometry": {
            "wheelDefinitions": [
                {
                    "type": "DRIVE",
                    "isActiveDriven": True,
                    "isActiveSteered": False,
                    "position": {"x": 0.0, "y": 0.3},
                    "diameter": 0.2,
                    "width": 0.05,
                }
            ],
            "envelopes2d": [
                {
                    "set": "unloaded",
                    "polygonPoints": [
                        {"x": -0.65, "y": -0.4},
                        {"x": 0.65, "y": -0.4},
                        {"x": 0.65, "y": 0.4},
                    ],
                }
            ],
        },
        "loadSpecification": {
            "loadPositions": ["front"],
            "loadSets": [{"setName": "DEFAULT", "loadType": "wheelchair", "maxWeigth": 180.0}],
        },
    }


def encode(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode()
