"""Alert operations: list (``fleet_view``) and acknowledge (``vehicle_command``, audited).

Alerts themselves are raised and cleared by the daemon (:mod:`dispatcher.alerting.watch`);
people only read them and acknowledge them. An acknowledgement commits with its
``alert.acknowledge`` audit row and its ``alert.acknowledged`` event; a refusal (no such
alert, another facility's, already acknowledged, a role without the permission) is
audited in a transaction of its own. An alert of a facility the caller does not see is
refused as :attr:`AlertRefusal.NOT_FOUND`, as if it did not exist.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

import asyncpg
import structlog

from dispatcher.alerting import store
from dispatcher.alerting.store import AlertRow
from dispatcher.auth.roles import Permission
from dispatcher.ops import audit
from dispatcher.ops.caller import Caller

log = structlog.get_logger(__name__)

ACK_ACTION = "alert.acknowledge"
#: Newest alerts a list answers with at most.
MAX_LIST = 1000


class AlertRefusal(StrEnum):
    """Why an alert operation was refused (the audit ``reason``)."""

    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    ALREADY_ACKNOWLEDGED = "already_acknowledged"


@dataclass(frozen=True, slots=True)
class AlertRefused:
    reason: AlertRefusal
    alert: AlertRow | None = None


class AlertOps:
    """Listing and acknowledging alerts."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def list(
        self,
        caller: Caller,
        *,
        facility_id: uuid.UUID | None = None,
        include_cleared: bool = False,
        limit: int = 200,
    ) -> list[AlertRow] | AlertRefused:
        """Open alerts (or recent history) of the facilities the caller sees, newest first."""
        if not caller.can(Permission.FLEET_VIEW):
            return AlertRefused(AlertRefusal.FORBIDDEN)
        own = caller.facility_id
        if own is not None:
            if facility_id is not None and facility_id != own:
                return AlertRefused(AlertRefusal.FORBIDDEN)
            facility_id = own
        return await store.list_alerts(
            self._pool,
            facility_id=facility_id,
            include_cleared=include_cleared,
            limit=max(1, min(limit, MAX_LIST)),
        )

    async def acknowledge(self, caller: Caller, alert_id: uuid.UUID) -> AlertRow | AlertRefused:
        """Mark the alert acknowledged by the caller (once; a second time is refused)."""
        if not caller.can(Permission.VEHICLE_COMMAND):
            return await self._refuse(caller, alert_id, AlertRefusal.FORBIDDEN, None)
        async with audit.transaction(self._pool) as conn:
            current = await store.get_alert(conn, alert_id)
            if current is None or not caller.sees_facility(current.facility_id):
                refusal = AlertRefused(AlertRefusal.NOT_FOUND)
            elif current.acknowledged_at is not None:
                refusal = AlertRefused(AlertRefusal.ALREADY_ACKNOWLEDGED, current)
            else:
                done = await store.acknowledge(conn, alert_id, caller.subject)
                if done is None:  # acknowledged by someone else meanwhile
                    refusal = AlertRefused(AlertRefusal.ALREADY_ACKNOWLEDGED, current)
                else:
                    if caller.audited:
                        await audit.append(
                            conn,
                            audit.entry(
                                caller,
                                action=ACK_ACTION,
                                resource_type="alert",
                                resource_id=str(alert_id),
                                success=True,
                                facility_id=done.facility_id,
                                details=_details(done),
                            ),
                        )
                    log.info("alerts.acknowledged", alert_id=str(alert_id), by=caller.subject)
                    return done
        return await self._refuse(caller, alert_id, refusal.reason, refusal.alert)

    async def _refuse(
        self,
        caller: Caller,
        alert_id: uuid.UUID,
        reason: AlertRefusal,
        alert: AlertRow | None,
    ) -> AlertRefused:
        if caller.audited:
            await audit.record(
                self._pool,
                audit.entry(
                    caller,
                    action=ACK_ACTION,
                    resource_type="alert",
                    resource_id=str(alert_id),
                    success=False,
                    facility_id=alert.facility_id if alert is not None else None,
                    details=_details(alert) if alert is not None else {},
                    reason=reason.value,
                ),
            )
        return AlertRefused(reason, alert)


def _details(alert: AlertRow) -> dict[str, object]:
    return {
        "kind": alert.kind.value,
        "subject_id": str(alert.subject_id),
        "message": alert.message,
    }
