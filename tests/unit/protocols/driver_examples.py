"""Hand-made driver-protocol messages, as in docs/protocols/driver.md (fresh dicts)."""

from __future__ import annotations

import json
from typing import Any


def header(header_id: int = 12, driver_id: str = "drv-anna") -> dict[str, Any]:
    return {
        "headerId": header_id,
        "timestamp": "2024-05-01T12:00:00.250Z",
        "version": "1.0",
        "driverId": driver_id,
    }


def connection(state: str = "ONLINE") -> dict[str, Any]:
    return {**header(0), "connectionState": state}


def status() -> dict[str, Any]:
    return {
        **header(),
        "availability": "busy",
        "lat": 52.52011,
        "lon": 13.40498,
        "accuracyM": 6.5,
        "headingDeg": 87.0,
        "speedMps": 4.2,
        "phoneBatteryPct": 64,
        "missionId": "5b1e0c1a-7a52-4e55-9f4c-2f8d0a4f9e11",
    }


def status_without_fix() -> dict[str, Any]:
    """Indoors, no location yet: the heartbeat still goes out."""
    return {**header(13), "availability": "online", "phoneBatteryPct": 80}


def offer_response(decision: str = "accept") -> dict[str, Any]:
    msg: dict[str, Any] = {**header(3), "offerId": "offer-77", "decision": decision}
    if decision == "decline":
        msg["reason"] = "on my way to a break"
    return msg


def trip(event: str = "picked_up") -> dict[str, Any]:
    msg: dict[str, Any] = {
        **header(5),
        "missionId": "5b1e0c1a-7a52-4e55-9f4c-2f8d0a4f9e11",
        "event": event,
        "lat": 52.52180,
        "lon": 13.40610,
    }
    if event == "problem":
        msg["note"] = "passenger not at the pickup point"
    return msg


def command_ack(result: str = "accepted") -> dict[str, Any]:
    msg: dict[str, Any] = {**header(2), "correlationId": "c0ffee00", "result": result}
    if result == "rejected":
        msg["reason"] = "driving a passenger"
    return msg


def offer() -> dict[str, Any]:
    return {
        **header(40),
        "offerId": "offer-77",
        "missionId": "5b1e0c1a-7a52-4e55-9f4c-2f8d0a4f9e11",
        "pickup": {"name": "Main Entrance", "lat": 52.5201, "lon": 13.4052},
        "dropoff": {"name": "Radiology", "lat": 52.5209, "lon": 13.4095},
        "requestedPickupAt": "2024-05-01T12:15:00.000Z",
        "expiresAt": "2024-05-01T12:01:00.000Z",
        "priority": "high",
        "notes": "wheelchair with oxygen bottle",
    }


def command(kind: str = "pause") -> dict[str, Any]:
    return {**header(41), "correlationId": "c0ffee00", "command": kind, "enabled": True}


def encode(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode()
