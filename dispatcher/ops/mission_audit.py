"""What a mission operation's audit row says (pure): action names, reasons, details."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from dispatcher.missions.domain import MissionRecord
from dispatcher.missions.errors import MissionError, VersionConflict, WrongVehicle
from dispatcher.missions.lifecycle import IllegalTransition, MissionEvent


class MissionRefusal(StrEnum):
    """Why a mission operation was refused (also the audit row's ``reason``)."""

    #: No such mission, or one the caller may not see.
    NOT_FOUND = "not_found"
    #: The request names a facility the caller's token does not cover.
    OTHER_FACILITY = "other_facility"
    #: An own-only role acting on a mission it did not create.
    NOT_OWNER = "not_owner"
    #: The caller's role lacks the permission.
    FORBIDDEN = "forbidden"
    ILLEGAL_TRANSITION = "illegal_transition"
    VERSION_CONFLICT = "version_conflict"
    WRONG_VEHICLE = "wrong_vehicle"
    #: An idempotency key reused with a different request.
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    #: Input well-formed but wrong here (unknown place or vehicle); not audited.
    INVALID = "invalid"
    #: PostgreSQL cannot be reached: the mission could not be stored (503, retry).
    UNAVAILABLE = "unavailable"
    #: The local spool is full: no new mission is taken until it drains (503).
    SPOOL_FULL = "spool_full"


TransitionError = MissionError | IllegalTransition


def action_of(event: MissionEvent) -> str:
    """The audit action of an event: ``mission.cancel``, ``mission.prioritize``, ..."""
    if event is MissionEvent.CANCELLED:
        return "mission.cancel"
    if event is MissionEvent.PRIORITY_CHANGED:
        return "mission.prioritize"
    return f"mission.{event.value}"


def refusal_of(exc: TransitionError) -> MissionRefusal:
    """The refusal a transition error stands for."""
    if isinstance(exc, IllegalTransition):
        return MissionRefusal.ILLEGAL_TRANSITION
    if isinstance(exc, VersionConflict):
        return MissionRefusal.VERSION_CONFLICT
    if isinstance(exc, WrongVehicle):
        return MissionRefusal.WRONG_VEHICLE
    return MissionRefusal.NOT_FOUND


def refusal_details(event: MissionEvent, exc: TransitionError) -> dict[str, Any]:
    """Audit details of a refused transition (what the mission was at)."""
    details: dict[str, Any] = {"event": event.value, "error": str(exc)}
    if isinstance(exc, IllegalTransition):
        details["status"] = exc.status.value
    elif isinstance(exc, VersionConflict):
        details.update(expected_version=exc.expected, version=exc.actual)
    return details


def snapshot(m: MissionRecord) -> dict[str, Any]:
    """The fields of a mission that transitions change (for audit old/new)."""
    return {
        "status": m.status.value,
        "priority": m.priority.value,
        "vehicle_id": str(m.vehicle_id) if m.vehicle_id else None,
        "version": m.version,
    }


def change_details(
    event: MissionEvent, seq: int, before: MissionRecord, after: MissionRecord
) -> dict[str, Any]:
    """Audit details of an applied transition."""
    return {"event": event.value, "seq": seq, "old": snapshot(before), "new": snapshot(after)}


def resource(mission_id: uuid.UUID | None) -> dict[str, Any]:
    """The resource fields of a mission's audit row."""
    return {
        "resource_type": "mission",
        "resource_id": str(mission_id) if mission_id is not None else None,
    }
