"""What each injected fault does to one simulated vehicle (the host applies them).

- ``vanish``: the connection is cut with no DISCONNECT (the broker publishes the Last
  Will ``CONNECTIONBROKEN``); the vehicle comes back after the fault's duration.
- ``reconnect``: ``OFFLINE`` (retained) and a clean DISCONNECT; back after a short gap.
- ``fatal_error``: the robot reports a FATAL error (``errorLevel: FATAL``) and stops
  moving; the error clears after the fault's duration and the robot may move again.
- ``stuck``: the robot keeps publishing its state, but makes no progress for a while.
- ``battery_fault``: the robot's battery drops at once to a few percent.
- ``silent_driver``: the next offer the driver accepts is its last word for a while: no
  status, no trip events, commands unanswered; then it drops the job and is back. A
  driver already on a job goes silent at once. If no offer is accepted within the
  fault's duration, the fault lapses and is recorded as skipped (nothing was injected).
- ``noisy_gps``: the driver's reported fixes scatter (~40 m) for a while, and report the
  accuracy a phone would then (``accuracyM`` 40 m instead of 5 m).
- ``malformed_burst``: a burst of messages fleetd must refuse on the vehicle's own topics
  (not JSON, wrong types, missing fields, a wrong protocol version, binary junk).

The faults that hit a moving robot (fatal error, stuck) take effect at once, whatever
the robot is doing; the note recorded with them says whether it held an order.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from sim.device import VirtualDevice
from sim.driver import ScriptedDriver
from sim.robot import VirtualRobot

#: The accuracy a noisy driver's fixes report (metres), as a phone's own estimate does.
NOISY_ACCURACY_M = 40.0
#: Battery left after a battery fault, percent.
BATTERY_FAULT_PCT = 4.0
#: The error a fatal fault puts in the robot's state.
FATAL_ERROR_TYPE = "simulatedDriveFault"


@dataclass
class FaultState:
    """The faults a vehicle is under right now (monotonic-clock deadlines)."""

    stuck_until: float = 0.0
    noisy_until: float = 0.0
    muted: bool = False
    muted_until: float = 0.0
    silent_pending: bool = False
    silent_for_s: float = 0.0
    #: When an armed silent_driver fault lapses unused (no offer accepted by then).
    silent_lapses_at: float = 0.0

    def holds_job(self, device: VirtualDevice) -> bool:
        return isinstance(device, ScriptedDriver) and device.job is not None

    def arm_silence(self, now: float, wall_s: float) -> None:
        """The next accepted offer (or the job held now) is the driver's last word."""
        self.silent_pending = True
        self.silent_for_s = wall_s
        self.silent_lapses_at = now + max(wall_s, 1.0)

    def silence_lapsed(self, now: float) -> bool:
        """An armed silence that found no job in time: disarm it, and say so once."""
        if self.silent_pending and now >= self.silent_lapses_at:
            self.silent_pending = False
            return True
        return False

    def mute(self, now: float) -> None:
        self.silent_pending = False
        self.muted = True
        self.muted_until = now + self.silent_for_s

    def unmute(self, device: VirtualDevice) -> None:
        """The phone is back: it has given up the job it went silent on."""
        self.muted = False
        if isinstance(device, ScriptedDriver) and device.job is not None:
            device.job = None
            device.availability = "online"

    def hit_robot(self, device: VirtualDevice, kind: str, now: float, wall_s: float) -> str:
        """Apply a robot fault; the note says what the robot was doing."""
        if not isinstance(device, VirtualRobot):
            return "skipped: not a robot"
        doing = f"during order {device.order_id}" if device.nodes else "while idle"
        if kind == "battery_fault":
            before = device.battery
            device.battery = min(device.battery, BATTERY_FAULT_PCT)
            device.mark_changed()
            return f"battery {before:.0f}% -> {device.battery:.0f}% {doing}"
        self.stuck_until = max(self.stuck_until, now + wall_s)
        device.driving = False
        if kind == "fatal_error":
            device.errors = [
                *device.errors,
                {
                    "errorType": FATAL_ERROR_TYPE,
                    "errorLevel": "FATAL",
                    "errorDescription": "injected fault: drive fault",
                    "errorReferences": [],
                },
            ]
            device.mark_changed()
            return f"FATAL error {doing}"
        device.mark_changed()
        return f"no progress {doing}"

    def clear_fatal(self, device: VirtualDevice) -> None:
        if isinstance(device, VirtualRobot):
            device.errors = [e for e in device.errors if e.get("errorType") != FATAL_ERROR_TYPE]
            device.mark_changed()


def malformed_payloads(device: VirtualDevice, rng: random.Random) -> list[tuple[str, bytes]]:
    """A burst of messages the protocol forbids, on the device's own report topics."""
    report = device.report_topic
    good: dict[str, Any] = device.report_message()
    wrong_types = {**good, "headerId": "seven"}
    missing = {k: v for k, v in good.items() if k not in ("timestamp",)}
    missing.pop(next(iter(k for k in good if k not in ("headerId", "timestamp"))), None)
    wrong_version = {**good, "version": "9.9.9"}
    junk = bytes(rng.randrange(256) for _ in range(64))
    return [
        (report, b"{not json"),
        (report, b"[]"),
        (report, json.dumps(wrong_types).encode()),
        (report, json.dumps(missing).encode()),
        (report, json.dumps(wrong_version).encode()),
        (report, junk),
        (report, b""),
        ("connection", b'{"connectionState": 42}'),
        (report, json.dumps(good)[: len(json.dumps(good)) // 2].encode()),
        (report, b"null"),
    ]
