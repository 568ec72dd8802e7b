"""Route helper: audit a response that showed passenger data, when the setting asks for it."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Request

from dispatcher.api.deps import Principal, caller, get_services
from dispatcher.missions.domain import MissionRecord
from dispatcher.ops.passenger_reads import record_passenger_read


async def audit_passenger_read(
    request: Request, principal: Principal, missions: Sequence[MissionRecord]
) -> None:
    """Record (through :mod:`dispatcher.ops`) that ``principal`` was shown ``missions``."""
    services = get_services(request)
    if services.settings.api.audit_passenger_reads:
        await record_passenger_read(services.pool, caller(principal, request), missions)
