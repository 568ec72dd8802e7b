"""Pure mapping for the mission store: rows to dataclasses (audit shapes: dispatcher.ops).

No SQL here (that is :mod:`dispatcher.missions.store`), no I/O, and no database driver:
a row is anything indexable by column name (:class:`Row`; asyncpg's records are).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from typing import Any, Protocol

from dispatcher.missions.domain import EventRecord, Location, MissionDraft, MissionRecord
from dispatcher.missions.lifecycle import MissionEvent, MissionStatus, Priority


class Row(Protocol):
    """A result row read by column name (an ``asyncpg.Record`` is one)."""

    def __getitem__(self, key: str, /) -> Any: ...


def insert_args(d: MissionDraft) -> tuple[Any, ...]:
    """The parameters of the store's INSERT, in its column order."""
    return (
        d.facility_id,
        d.priority.value,
        d.pickup.as_json(),
        d.pickup.lon,
        d.pickup.lat,
        d.pickup.place,
        d.dropoff.as_json(),
        d.dropoff.lon,
        d.dropoff.lat,
        d.dropoff.place,
        d.window_start,
        d.window_end,
        d.requirements,
        d.passenger_ref,
        d.passenger_name,
        d.notes,
        d.created_by,
        d.idempotency_key,
        d.request_hash,
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def jsonable(details: Mapping[str, Any]) -> dict[str, Any]:
    """``details`` with UUIDs, datetimes and enums as strings, ready for jsonb."""
    out: dict[str, Any] = json.loads(json.dumps(dict(details), default=_json_default))
    return out


def location_from(doc: Mapping[str, Any]) -> Location:
    """A :class:`Location` from the stored ``pickup`` / ``dropoff`` jsonb."""
    return Location(lat=float(doc["lat"]), lon=float(doc["lon"]), place=doc.get("place"))


def mission_from_row(row: Row) -> MissionRecord:
    """A :class:`MissionRecord` from a ``missions`` row (the store's column list)."""
    return MissionRecord(
        id=row["id"],
        facility_id=row["facility_id"],
        status=MissionStatus(row["status"]),
        priority=Priority(row["priority"]),
        pickup=location_from(row["pickup"]),
        dropoff=location_from(row["dropoff"]),
        window_start=row["window_start"],
        window_end=row["window_end"],
        requirements=dict(row["requirements"]),
        passenger_ref=row["passenger_ref"],
        passenger_name=row["passenger_name"],
        notes=row["notes"],
        created_by=row["created_by"],
        vehicle_id=row["vehicle_id"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        completed_at=row["completed_at"],
        held_reason=row["held_reason"],
    )


def event_from_row(row: Row) -> EventRecord:
    """An :class:`EventRecord` from a ``mission_events`` row."""
    return EventRecord(
        seq=row["seq"],
        mission_id=row["mission_id"],
        facility_id=row["facility_id"],
        event=MissionEvent(row["event"]),
        from_status=MissionStatus(row["from_status"]) if row["from_status"] else None,
        to_status=MissionStatus(row["to_status"]),
        vehicle_id=row["vehicle_id"],
        actor=row["actor"],
        details=dict(row["details"]),
        at=row["at"],
    )


def event_from_values(values: Sequence[Any]) -> EventRecord:
    """An :class:`EventRecord` from one record of the timeline the store reads with a mission.

    Fields in order: seq, mission_id, facility_id, event, from_status, to_status,
    vehicle_id, actor, details (JSON text), at.
    """
    seq, mission_id, facility_id, event, from_status, to_status, vehicle_id, actor, details, at = (
        values
    )
    return EventRecord(
        seq=seq,
        mission_id=mission_id,
        facility_id=facility_id,
        event=MissionEvent(event),
        from_status=MissionStatus(from_status) if from_status else None,
        to_status=MissionStatus(to_status),
        vehicle_id=vehicle_id,
        actor=actor,
        details=json.loads(details),
        at=at,
    )
