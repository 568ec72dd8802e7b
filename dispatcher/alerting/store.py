"""Every SQL statement on alerts and alert events (migration 0008).

An alert's change and its ``alert_events`` row are written in one transaction, so the
live event stream (``alert.raised``, ``alert.cleared``, ``alert.acknowledged``) never
shows a change that did not happen, nor misses one that did.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from dispatcher.alerting.rules import AlertCondition, AlertKey, AlertKind, OpenMission
from dispatcher.storage.db import Conn


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One stored alert."""

    id: uuid.UUID
    facility_id: uuid.UUID
    kind: AlertKind
    severity: str
    subject_id: uuid.UUID
    vehicle_id: uuid.UUID | None
    mission_id: uuid.UUID | None
    message: str
    raised_at: datetime
    cleared_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None

    @property
    def key(self) -> AlertKey:
        return AlertKey(self.kind, self.subject_id)

    @property
    def open(self) -> bool:
        return self.cleared_at is None

    def event_details(self) -> dict[str, Any]:
        """What an ``alert.*`` event carries about the alert."""
        return {
            "kind": self.kind.value,
            "severity": self.severity,
            "message": self.message,
            "subject_id": str(self.subject_id),
            "vehicle_id": str(self.vehicle_id) if self.vehicle_id else None,
            "mission_id": str(self.mission_id) if self.mission_id else None,
            "raised_at": self.raised_at.isoformat(),
            "acknowledged_by": self.acknowledged_by,
        }


_COLUMNS = (
    "id, facility_id, kind, severity, subject_id, vehicle_id, mission_id, message, "
    "raised_at, cleared_at, acknowledged_at, acknowledged_by"
)


def _row(r: asyncpg.Record) -> AlertRow:
    return AlertRow(
        id=r["id"],
        facility_id=r["facility_id"],
        kind=AlertKind(r["kind"]),
        severity=r["severity"],
        subject_id=r["subject_id"],
        vehicle_id=r["vehicle_id"],
        mission_id=r["mission_id"],
        message=r["message"],
        raised_at=r["raised_at"],
        cleared_at=r["cleared_at"],
        acknowledged_at=r["acknowledged_at"],
        acknowledged_by=r["acknowledged_by"],
    )


async def _event(conn: Conn, alert: AlertRow, event: str, actor: str | None) -> None:
    await conn.execute(
        "INSERT INTO alert_events (alert_id, facility_id, event, vehicle_id, actor, details) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        alert.id,
        alert.facility_id,
        event,
        alert.vehicle_id,
        actor,
        alert.event_details(),  # the pool's jsonb codec encodes it
    )


async def open_alerts(conn: Conn | asyncpg.Pool) -> list[AlertRow]:
    """Every alert still open, of every facility."""
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM alerts WHERE cleared_at IS NULL")
    return [_row(r) for r in rows]


async def list_alerts(
    pool: asyncpg.Pool,
    *,
    facility_id: uuid.UUID | None,
    include_cleared: bool,
    limit: int,
) -> list[AlertRow]:
    """Alerts newest first: the open ones, or with ``include_cleared`` the recent history."""
    where = ["($1::uuid IS NULL OR facility_id = $1)"]
    if not include_cleared:
        where.append("cleared_at IS NULL")
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM alerts WHERE {' AND '.join(where)} "
        "ORDER BY raised_at DESC, id LIMIT $2",
        facility_id,
        limit,
    )
    return [_row(r) for r in rows]


async def get_alert(conn: Conn | asyncpg.Pool, alert_id: uuid.UUID) -> AlertRow | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM alerts WHERE id = $1", alert_id)
    return _row(row) if row is not None else None


async def raise_alert(conn: Conn, cond: AlertCondition, actor: str) -> AlertRow | None:
    """Open ``cond`` as an alert and record ``raised``; None when it is open already."""
    row = await conn.fetchrow(
        "INSERT INTO alerts (facility_id, kind, severity, subject_id, vehicle_id, mission_id, "
        "message) VALUES ($1, $2, $3, $4, $5, $6, $7) "
        "ON CONFLICT (kind, subject_id) WHERE cleared_at IS NULL DO NOTHING "
        f"RETURNING {_COLUMNS}",
        cond.facility_id,
        cond.key.kind.value,
        cond.severity.value,
        cond.key.subject_id,
        cond.vehicle_id,
        cond.mission_id,
        cond.message,
    )
    if row is None:
        return None
    alert = _row(row)
    await _event(conn, alert, "raised", actor)
    return alert


async def clear_alert(conn: Conn, alert_id: uuid.UUID, actor: str) -> AlertRow | None:
    """Close an open alert and record ``cleared``; None when it was not open."""
    row = await conn.fetchrow(
        f"UPDATE alerts SET cleared_at = now() WHERE id = $1 AND cleared_at IS NULL "
        f"RETURNING {_COLUMNS}",
        alert_id,
    )
    if row is None:
        return None
    alert = _row(row)
    await _event(conn, alert, "cleared", actor)
    return alert


async def acknowledge(conn: Conn, alert_id: uuid.UUID, actor: str) -> AlertRow | None:
    """Mark an alert acknowledged by ``actor`` and record it; None when it already was
    (or does not exist)."""
    row = await conn.fetchrow(
        "UPDATE alerts SET acknowledged_at = now(), acknowledged_by = $2 "
        f"WHERE id = $1 AND acknowledged_at IS NULL RETURNING {_COLUMNS}",
        alert_id,
        actor[:200],
    )
    if row is None:
        return None
    alert = _row(row)
    await _event(conn, alert, "acknowledged", actor)
    return alert


#: The open missions the rules can alert on: those the engine holds for an operator, and
#: the pending ones ready since the cutoff or longer. Filtered here, not after fetching
#: every open mission: that fetch ran every ``alerts.check_interval_s`` (0.5 s) over the
#: whole backlog (tens of thousands of rows under load), the daemon's largest cost after
#: the requests themselves.
# Two index reads, not one scan of every mission ever made: the held ones by their ids,
# the late pending ones by missions_pending_ready (migration 0013).
_ALERTABLE_SQL = """
SELECT id, facility_id, status, created_at, vehicle_id, window_start FROM missions
WHERE id = ANY($1::uuid[]) AND status IN ('pending', 'assigned', 'in_progress')
UNION
SELECT id, facility_id, status, created_at, vehicle_id, window_start FROM missions
WHERE status = 'pending' AND GREATEST(created_at, COALESCE(window_start, created_at)) <= $2
"""


async def open_missions(
    pool: asyncpg.Pool, *, held: Collection[uuid.UUID], ready_before: float
) -> list[OpenMission]:
    """The open missions an alert can hold for: ``held`` ones, and pending ones whose
    :attr:`OpenMission.ready_at` is ``ready_before`` (epoch seconds) or earlier."""
    # A millisecond of slack: a superset, so rounding never hides a mission the rules
    # (:func:`~dispatcher.alerting.rules.current_alerts`, the judge) would alert on.
    cutoff = datetime.fromtimestamp(ready_before + 0.001, tz=UTC)
    rows = await pool.fetch(_ALERTABLE_SQL, list(held), cutoff)
    return [
        OpenMission(
            r["id"],
            r["facility_id"],
            r["status"],
            r["created_at"].timestamp(),
            r["vehicle_id"],
            None if r["window_start"] is None else r["window_start"].timestamp(),
        )
        for r in rows
    ]
