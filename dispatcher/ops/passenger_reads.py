"""Audit rows for reads of passenger data (``api.audit_passenger_reads``, on by default).

A mission carries its passenger's reference and display name: health-related personal
data about who was moved where and when. Who looked at it is recorded like a change is,
one row per response that held any (``missions.read``), naming the missions; responses
with no passenger data write nothing, so dashboards polling empty pages cost no writes.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from dispatcher.missions.domain import MissionRecord
from dispatcher.ops import audit
from dispatcher.ops.caller import Caller

#: Mission ids named in one row (a page holds at most 200; the count is always exact).
MAX_IDS = 200


async def record_passenger_read(
    pool: asyncpg.Pool, caller: Caller, missions: Sequence[MissionRecord]
) -> None:
    """Record that ``caller`` was shown the passengers of ``missions`` (if any had one)."""
    shown = [m for m in missions if m.passenger_ref is not None or m.passenger_name is not None]
    if not shown:
        return
    facilities = {m.facility_id for m in shown}
    row = audit.entry(
        caller,
        action="missions.read",
        resource_type="mission",
        resource_id=str(shown[0].id) if len(shown) == 1 else None,
        success=True,
        details={"passengers": len(shown), "mission_ids": [str(m.id) for m in shown[:MAX_IDS]]},
        facility_id=facilities.pop() if len(facilities) == 1 else None,
    )
    await audit.record(pool, row)
