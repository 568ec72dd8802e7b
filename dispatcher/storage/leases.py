"""The facility leases in PostgreSQL: acquire, renew, release, and the fence check.

Each operation is one SQL statement, and every expiry is judged by the database's clock
(``clock_timestamp()``), so the daemons' own clocks may disagree without harm. A lease
row's ``token`` grows by one with every new tenure: another holder, or the same holder
again after its lease expired or was released.

:func:`fence_holds` is the check a fenced write makes inside its own transaction: it
takes a share lock on the lease row, so a takeover (an ``UPDATE`` of that row) waits
until the write has committed or rolled back; a write therefore either lands before the
new leader's tenure begins (and the new leader loads it) or is refused.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

_ACQUIRE = """
INSERT INTO facility_leases AS l
    (facility_id, holder, token, acquired_at, renewed_at, expires_at)
VALUES ($1, $2, 1, clock_timestamp(), clock_timestamp(),
        clock_timestamp() + make_interval(secs => $3))
ON CONFLICT (facility_id) DO UPDATE SET
    holder = EXCLUDED.holder,
    token = l.token + 1,
    acquired_at = EXCLUDED.acquired_at,
    renewed_at = EXCLUDED.renewed_at,
    expires_at = EXCLUDED.expires_at
WHERE l.expires_at <= clock_timestamp()
   OR l.holder = EXCLUDED.holder
   OR (l.holder = $4 AND l.token = $5)
RETURNING token
"""

_RENEW = """
UPDATE facility_leases
SET renewed_at = clock_timestamp(), expires_at = clock_timestamp() + make_interval(secs => $4)
WHERE facility_id = $1 AND holder = $2 AND token = $3 AND expires_at > clock_timestamp()
RETURNING token
"""

_RELEASE = """
UPDATE facility_leases
SET expires_at = clock_timestamp(), renewed_at = clock_timestamp()
WHERE facility_id = $1 AND holder = $2 AND token = $3
RETURNING token
"""

_READ = """
SELECT holder, token, expires_at > clock_timestamp() AS valid,
       extract(epoch FROM expires_at - clock_timestamp())::float8 AS left_s
FROM facility_leases WHERE facility_id = $1
"""

#: The fence check with its parameters named (``str.format``: facility, holder, token),
#: for statements that make it alongside another (the mission store's fenced lock).
FENCE_SQL = """
SELECT 1 FROM facility_leases
WHERE facility_id = {facility} AND holder = {holder} AND token = {token}
  AND expires_at > clock_timestamp()
FOR SHARE
"""

_FENCE = FENCE_SQL.format(facility="$1", holder="$2", token="$3")


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """A facility's lease as the database sees it now."""

    holder: str
    token: int
    valid: bool
    #: Seconds until it expires (negative: expired that long ago).
    left_s: float


async def acquire(
    pool: asyncpg.Pool | asyncpg.Connection,
    facility_id: uuid.UUID,
    holder: str,
    ttl_s: float,
    *,
    reclaim: tuple[str, int] | None = None,
) -> int | None:
    """Take the facility's lease for ``ttl_s`` if nobody holds it (or it expired, or it is
    ``holder``'s already, or it is exactly ``reclaim`` = (holder, token): a holder known to
    be dead). The new tenure's token; None when someone else holds it."""
    dead_holder, dead_token = reclaim if reclaim is not None else (None, None)
    token = await pool.fetchval(_ACQUIRE, facility_id, holder, ttl_s, dead_holder, dead_token)
    return None if token is None else int(token)


async def renew(
    pool: asyncpg.Pool | asyncpg.Connection,
    facility_id: uuid.UUID,
    holder: str,
    token: int,
    ttl_s: float,
) -> bool:
    """Extend ``holder``'s lease of tenure ``token`` by ``ttl_s`` from now. False when that
    tenure is over (expired, released, or taken by another holder)."""
    return await pool.fetchval(_RENEW, facility_id, holder, token, ttl_s) is not None


async def release(
    pool: asyncpg.Pool | asyncpg.Connection, facility_id: uuid.UUID, holder: str, token: int
) -> bool:
    """End ``holder``'s tenure ``token`` now, so a standby takes over at its next poll.
    False when it was not held any more."""
    return await pool.fetchval(_RELEASE, facility_id, holder, token) is not None


async def read(pool: asyncpg.Pool | asyncpg.Connection, facility_id: uuid.UUID) -> LeaseRow | None:
    """The facility's lease row, None when nobody ever held it."""
    row = await pool.fetchrow(_READ, facility_id)
    if row is None:
        return None
    return LeaseRow(row["holder"], int(row["token"]), bool(row["valid"]), float(row["left_s"]))


async def fence_holds(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
    facility_id: uuid.UUID,
    holder: str,
    token: int,
) -> bool:
    """Inside a write transaction: whether ``holder`` still holds tenure ``token`` of the
    facility, unexpired. Locks the row (``FOR SHARE``) until the transaction ends."""
    return await conn.fetchval(_FENCE, facility_id, holder, token) is not None
