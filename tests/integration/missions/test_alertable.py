"""The alert watch reads only the open missions an alert can hold for, filtered in PostgreSQL.

The rules (:func:`dispatcher.alerting.rules.current_alerts`) alert on a mission the
dispatch engine holds, or on a pending one ready for longer than ``mission_wait_s``; the
watch's query must return at least those, and (its reason to exist) not the rest of the
backlog it used to fetch every half second.
"""

from __future__ import annotations

import time
import uuid

import asyncpg
import httpx

from dispatcher.alerting.rules import AlertKind, current_alerts
from dispatcher.alerting.store import open_missions
from dispatcher.auth.roles import Role
from tests.integration.missions.conftest import BODY, TokenFactory

WAIT_S = 300.0


async def _create(client: httpx.AsyncClient, headers: dict[str, str]) -> uuid.UUID:
    r = await client.post("/v1/missions", json=BODY, headers=headers)
    assert r.status_code == 201, r.text
    return uuid.UUID(r.json()["id"])


async def _age(pool: asyncpg.Pool, mission_id: uuid.UUID, seconds: float) -> None:
    await pool.execute(
        "UPDATE missions SET created_at = now() - make_interval(secs => $2) WHERE id = $1",
        mission_id,
        seconds,
    )


async def test_only_held_and_long_waiting_pending_missions_are_read(
    client: httpx.AsyncClient, token: TokenFactory, pg_pool: asyncpg.Pool
) -> None:
    headers = await token(Role.OPERATOR)
    fresh = await _create(client, headers)
    waiting = await _create(client, headers)
    held = await _create(client, headers)
    booked = await _create(client, headers)  # created long ago, its window opens later
    cancelled = await _create(client, headers)
    for mission_id in (waiting, booked, cancelled):
        await _age(pg_pool, mission_id, WAIT_S + 60)
    await pg_pool.execute(
        "UPDATE missions SET window_start = now() + interval '1 hour', "
        "window_end = now() + interval '2 hours' WHERE id = $1",
        booked,
    )
    r = await client.post(f"/v1/missions/{cancelled}/cancel", json={}, headers=headers)
    assert r.status_code == 200, r.text

    now = time.time()
    read = await open_missions(pg_pool, held=[held], ready_before=now - WAIT_S)

    assert {m.id for m in read} == {waiting, held}
    assert fresh not in {m.id for m in read}
    alerts = current_alerts((), read, {held: "rider on board"}, now=now)
    assert {(k.kind, k.subject_id) for k in alerts} == {
        (AlertKind.MISSION_WAITING, waiting),
        (AlertKind.MISSION_DECISION, held),
    }


async def test_the_read_uses_indexes_not_a_scan_of_every_mission(pg_pool: asyncpg.Pool) -> None:
    """Twice a second, on a table of every mission ever made: the late pending ones come
    from ``missions_pending_ready`` (migration 0013), the held ones by their ids. With
    sequential scans priced out, a plan that still scans the table has no index to use."""
    from dispatcher.alerting.store import _ALERTABLE_SQL

    async with pg_pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        rows = await conn.fetch(
            "EXPLAIN " + _ALERTABLE_SQL.replace("$1::uuid[]", "'{}'::uuid[]").replace("$2", "now()")
        )
    plan = "\n".join(r[0] for r in rows)
    assert "Seq Scan" not in plan, plan
    assert "missions_pending_ready" in plan, plan
