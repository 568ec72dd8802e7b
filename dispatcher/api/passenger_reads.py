"""Route helper: audit a response that showed passenger data, when the setting asks for it."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Request

from dispatcher.api.deps import Principal, caller, get_services
from dispatcher.missions.domain import MissionRecord
from dispatcher.ops.passenger_reads import PassengerReadLog, record_passenger_read


async def audit_passenger_read(
    request: Request, principal: Principal, missions: Sequence[MissionRecord]
) -> None:
    """Record (through :mod:`dispatcher.ops`) that ``principal`` was shown ``missions``:
    batched by the app's :class:`PassengerReadLog` (written at once without one)."""
    services = get_services(request)
    if not services.settings.api.audit_passenger_reads:
        return
    reads: PassengerReadLog | None = getattr(request.app.state, "passenger_reads", None)
    if reads is not None:
        await reads.record(caller(principal, request), missions)
    else:
        await record_passenger_read(services.pool, caller(principal, request), missions)
