"""Daily partitions: create them ahead of time, drop them after the retention.

Two tables are partitioned by day on ``at``: ``telemetry`` and ``vehicle_events``
(migration 0007). A partition ``<parent>_pYYYYMMDD`` covers one UTC day,
``[D 00:00Z, D+1 00:00Z)``. The bounds, not the names, decide what is dropped: they are
read from ``pg_catalog``, so a hand-made or oddly named partition (``vehicle_events_legacy``,
everything before the migration) is judged by what it actually holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg
import structlog

from dispatcher.config import DatabaseSettings
from dispatcher.storage.db import Conn

log = structlog.get_logger(__name__)

PARENT = "telemetry"
PREFIX = "telemetry_p"
#: The other partitioned table: vehicle history, kept ``vehicle_events_retention_days``.
VEHICLE_EVENTS = "vehicle_events"

#: Creating or dropping a partition locks the parent against the telemetry COPY; give up
#: after this rather than stall ingest behind a long lock queue (retried next round).
DDL_LOCK_TIMEOUT = "5s"


def partition_name(day: date, parent: str = PARENT) -> str:
    """``<parent>_pYYYYMMDD`` (``telemetry_pYYYYMMDD`` by default) for a UTC day."""
    # Not strftime: "%Y" is not zero-padded below year 1000 on glibc.
    return f"{parent}_p{day.year:04d}{day.month:02d}{day.day:02d}"


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The half-open UTC interval a day's partition covers."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def days_to_ensure(today: date, ahead_days: int) -> list[date]:
    """Yesterday through ``today + ahead_days``: yesterday so late rows still have a home."""
    return [today + timedelta(days=n) for n in range(-1, ahead_days + 1)]


def retention_cutoff(today: date, retention_days: int) -> datetime:
    """Rows before this instant are past retention (start of ``today - retention_days`` UTC)."""
    return day_bounds(today - timedelta(days=retention_days))[0]


@dataclass(frozen=True, slots=True)
class Partition:
    """One existing partition of ``telemetry`` and its bounds (None for MINVALUE/MAXVALUE)."""

    name: str
    lower: datetime | None
    upper: datetime | None
    is_default: bool = False


def expired(partitions: Iterable[Partition], cutoff: datetime) -> list[Partition]:
    """Partitions holding only rows older than ``cutoff``: upper bound at or before it.

    The default partition and unbounded ones (MAXVALUE) are never expired.
    """
    return [p for p in partitions if not p.is_default and p.upper is not None and p.upper <= cutoff]


# Bounds come back as timestamptz: the regexp takes the literals pg_get_expr prints and
# the server casts them back, so the session TimeZone cannot skew what we compare.
_LIST_SQL = r"""
SELECT c.relname AS name,
       pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' AS is_default,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                     'FROM \(''([^'']+)''\) TO'))[1]::timestamptz AS lower,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                     'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper
FROM pg_catalog.pg_inherits i
JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = $1::regclass
ORDER BY c.relname
"""


async def list_partitions(conn: Conn, parent: str = PARENT) -> list[Partition]:
    """Every partition of ``parent`` with its bounds, read from the catalog."""
    rows = await conn.fetch(_LIST_SQL, parent)
    return [
        Partition(
            name=r["name"], lower=r["lower"], upper=r["upper"], is_default=bool(r["is_default"])
        )
        for r in rows
    ]


async def _ddl(conn: Conn, sql: str) -> None:
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
        await conn.execute(sql)


def _covered(partitions: Iterable[Partition], day: date) -> bool:
    start, end = day_bounds(day)
    for p in partitions:
        if p.is_default:
            continue
        lo_ok = p.lower is None or p.lower < end
        hi_ok = p.upper is None or p.upper > start
        if lo_ok and hi_ok:
            return True  # overlaps: creating ours would fail, so treat the day as handled
    return False


async def ensure_partitions_for_days(
    conn: Conn, days: Iterable[date], parent: str = PARENT
) -> list[str]:
    """Create the daily partitions of ``parent`` for ``days`` no existing one overlaps.

    Returns the names created. Idempotent; safe against a concurrent creator.
    """
    existing = await list_partitions(conn, parent)
    created: list[str] = []
    for day in sorted(set(days)):
        if _covered(existing, day):
            continue
        name = partition_name(day, parent)
        start, end = day_bounds(day)
        # DDL takes no bind parameters; the names are ours and the bounds are ISO instants.
        sql = (
            f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF {parent} '
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
        try:
            await _ddl(conn, sql)
        except asyncpg.DuplicateTableError:
            continue  # another daemon created it between our read and now
        except asyncpg.InvalidObjectDefinitionError as exc:
            # "would overlap partition ...": someone else's partition appeared meanwhile.
            log.warning(f"{parent}.partition_overlap", partition=name, error=str(exc))
            continue
        created.append(name)
    return created


async def ensure_partitions(
    conn: Conn, today: date, ahead_days: int, parent: str = PARENT
) -> list[str]:
    """Create missing partitions from ``today - 1`` to ``today + ahead_days``; return names."""
    return await ensure_partitions_for_days(conn, days_to_ensure(today, ahead_days), parent)


async def drop_expired_partitions(
    conn: Conn, today: date, retention_days: int, parent: str = PARENT
) -> list[str]:
    """Drop partitions whose every row is older than ``retention_days`` before ``today``.

    A partition goes when its upper bound (from the catalog) is at or before the start of
    ``today - retention_days`` (UTC). Returns the names dropped.
    """
    cutoff = retention_cutoff(today, retention_days)
    dropped: list[str] = []
    for part in expired(await list_partitions(conn, parent), cutoff):
        quoted = '"' + part.name.replace('"', '""') + '"'
        await _ddl(conn, f"DROP TABLE IF EXISTS {quoted}")
        dropped.append(part.name)
    return dropped


def utc_today() -> date:
    """Today's date in UTC, the calendar the partitions use."""
    return datetime.now(UTC).date()


async def maintain(conn: Conn, settings: DatabaseSettings, today: date) -> None:
    """One round for both partitioned tables: create ahead, drop what is past retention."""
    for parent, retention in (
        (PARENT, settings.telemetry_retention_days),
        (VEHICLE_EVENTS, settings.vehicle_events_retention_days),
    ):
        created = await ensure_partitions(
            conn, today, settings.telemetry_partitions_ahead_days, parent
        )
        if created:
            log.info(f"{parent}.partitions_created", partitions=created)
        dropped = await drop_expired_partitions(conn, today, retention, parent)
        if dropped:
            log.info(f"{parent}.partitions_dropped", partitions=dropped)


async def run_partition_maintenance(
    pool: asyncpg.Pool, settings: DatabaseSettings, *, interval_s: float = 3600.0
) -> None:
    """Forever: create upcoming partitions and drop expired ones, every ``interval_s``.

    A failed round is logged and retried at the next one; only cancellation ends the loop.
    """
    while True:
        try:
            async with pool.acquire() as conn:
                await maintain(conn, settings, utc_today())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Postgres away or a lock timeout: the partitions made ahead buy days of slack.
            log.error("telemetry.partition_maintenance_failed", error=repr(exc))
        await asyncio.sleep(interval_s)
