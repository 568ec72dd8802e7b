"""Reading the live event stream: mission and vehicle events in a resumable, gap-free order.

Both event tables take ``seq`` from the shared sequence ``fleet_event_seq``. The stream
sends each row once, with its ``seq`` as the event id, and a client that reconnects with
the last id it saw gets every event after it: none lost, none twice.

Why not ``WHERE seq > last_seen``
---------------------------------
A sequence value is taken when a row is inserted, but transactions commit in another
order. With T1 inserting seq 50, T2 inserting seq 51 and committing first, a reader sees
51 but not 50; it moves its cursor to 51, T1 commits, and 50 is never sent.

Filtering that query by "inserted by a transaction older than every one still running"
(row ``xmin`` < ``pg_snapshot_xmin(pg_current_snapshot())``) is not enough on its own
either while the cursor is a seq: the xid of a transaction is assigned at its *first*
write, its seq at its *event* insert, and the two orders differ. T1 gets xid 100 (it
updated a mission first), T2 gets xid 101 and seq 50, T1 takes seq 51 and commits. At
that moment T2 still runs, the horizon is 101, T1's row (xid 100 < 101) is sent, the
cursor moves to 51, T2 commits, and seq 50 is lost again.

What we do
----------
Every event row records the 64-bit id of the transaction that inserted it (``txid``,
``xid8``, default ``pg_current_xact_id()``; migration 0004). The stream is ordered by
``(txid, seq)``, and one statement reads, under one snapshot S:

    rows with (txid, seq) > cursor  AND  txid < horizon,  horizon = pg_snapshot_xmin(S)

in that order; the cursor becomes the ``(txid, seq)`` of the last row sent.

* Every transaction with an id below ``pg_snapshot_xmin(S)`` had finished when S was taken
  (PostgreSQL's snapshot guarantee), so each of its committed rows is visible in S and
  sent in this or an earlier read; an aborted one has no rows to send.
* Any row that becomes visible *after* S belongs to a transaction still running at S (or
  not yet started), whose id is >= the horizon > the txid of every row sent so far: it
  sorts after the cursor and is sent by a later read. So nothing is skipped, and as the
  cursor only grows, nothing is sent twice.
* The order depends on the stored data only (not on when anyone read), so a client's last
  id can be turned back into a position: look up the row with that ``seq`` and resume
  after its ``(txid, seq)``.

``xmin`` (32-bit, wraps around every 4 billion transactions and is frozen by VACUUM)
cannot serve as that stable key, hence the column. Consequences worth knowing:

* Ids are unique but not increasing across transactions: order is by transaction, then
  seq. Events of one transaction come out together in seq order. Changes to one mission
  are serialised by its row lock and come out in order; two transactions that both wrote
  before contending for one row could show in the other order; compare ``at`` then.
* The horizon is the oldest transaction running anywhere on the *server* (all databases):
  a transaction left open ("idle in transaction") delays the stream until it ends. Set
  ``idle_in_transaction_session_timeout`` on the server. Nothing is lost meanwhile.
* ``fleet_event_seq`` must keep ``CACHE 1`` (the default) for ids to follow insert order
  within a transaction.

Wake-ups: migration 0004 adds a statement-level trigger on both tables that does
``pg_notify('fleet_events', kind)``; NOTIFY is delivered at commit. :class:`EventHub`
holds the one LISTEN connection of the process and wakes every subscribed stream; woken
streams share one read (:class:`dispatcher.storage.event_feed.EventFeed`); the
streams also poll (every second, faster while rows are held back behind the horizon), so a
lost notification or a dropped LISTEN connection only costs latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import asyncpg
import structlog
from pydantic import SecretStr

from dispatcher.retry import Backoff, BackoffPolicy
from dispatcher.storage.db import CONNECT_ERRORS, connect, describe_error
from dispatcher.storage.errors import StorageUnavailable

log = structlog.get_logger(__name__)

#: NOTIFY channel of migration 0004's trigger; the payload is an :class:`EventKind` value.
CHANNEL: Final = "fleet_events"

#: What ends a LISTEN session (the task then re-connects).
_LISTEN_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *CONNECT_ERRORS)

#: Rows read per query: the most one stream holds in memory at a time.
DEFAULT_BATCH: Final = 200


class EventKind(StrEnum):
    """Which table an event comes from (the first part of its SSE event name)."""

    MISSION = "mission"
    VEHICLE = "vehicle"
    #: Alerts raised, cleared and acknowledged (migration 0008, dispatcher/alerting).
    ALERT = "alert"


ALL_KINDS: Final = frozenset(EventKind)


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A place in the stream: just after the row ``(txid, seq)``.

    ``Position(0, 0)`` is the beginning of history.
    """

    txid: int
    seq: int


START: Final = Position(0, 0)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One mission, vehicle or alert event, as the stream sends it."""

    kind: EventKind
    seq: int
    txid: int
    facility_id: uuid.UUID
    #: The mission's id for mission events, the vehicle's for vehicle events, the alert's
    #: for alert events.
    subject_id: uuid.UUID
    event: str
    from_status: str | None
    to_status: str | None
    #: Mission events: the vehicle involved, if any. Vehicle events: the vehicle itself.
    vehicle_id: uuid.UUID | None
    actor: str | None
    details: dict[str, Any]
    at: datetime

    @property
    def position(self) -> Position:
        return Position(self.txid, self.seq)

    @property
    def name(self) -> str:
        """SSE event name: ``mission.created``, ``vehicle.went_online``..."""
        return f"{self.kind.value}.{self.event}"


@dataclass(frozen=True, slots=True)
class Batch:
    """The result of one read."""

    events: list[StreamEvent]
    #: True when the read stopped at ``limit``: read again at once.
    more: bool
    #: True when committed rows past the cursor wait behind the horizon (an older
    #: transaction still runs): worth reading again soon rather than at the next poll.
    held: bool


# Queries ----------------------------------------------------------------------------------

_COLUMNS: dict[EventKind, str] = {
    EventKind.MISSION: (
        "'mission'::text AS kind, seq, txid, facility_id, mission_id AS subject_id, event, "
        "from_status, to_status, vehicle_id, actor, details, at"
    ),
    # status_changed details carry {"from": ..., "to": ...}; other vehicle events have none.
    EventKind.VEHICLE: (
        "'vehicle'::text AS kind, seq, txid, facility_id, vehicle_id AS subject_id, event, "
        "details->>'from' AS from_status, details->>'to' AS to_status, vehicle_id, "
        "NULL::text AS actor, details, at"
    ),
    EventKind.ALERT: (
        "'alert'::text AS kind, seq, txid, facility_id, alert_id AS subject_id, event, "
        "NULL::text AS from_status, NULL::text AS to_status, vehicle_id, actor, details, at"
    ),
}
_TABLES: dict[EventKind, str] = {
    EventKind.MISSION: "mission_events",
    EventKind.VEHICLE: "vehicle_events",
    EventKind.ALERT: "alert_events",
}


def _read_sql(kinds: frozenset[EventKind], by_facility: bool) -> str:
    """The read for one combination of filters (static text, so each is prepared once).

    $1 txid, $2 seq of the cursor; $3 limit; $4 facility (only when ``by_facility``).
    Rows past the horizon are read too (flagged ``settled = false``) so the caller learns
    that something is held back; the settled ones form a prefix of the ordered result.
    """
    facility = " AND facility_id = $4" if by_facility else ""
    parts = [
        f"(SELECT {_COLUMNS[k]} FROM {_TABLES[k]} "
        f"WHERE (txid, seq) > ($1::xid8, $2::bigint){facility} "
        f"ORDER BY txid, seq LIMIT $3)"
        for k in sorted(kinds)
    ]
    return (
        "WITH h AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS horizon) "
        "SELECT e.*, e.txid < h.horizon AS settled FROM ("
        + " UNION ALL ".join(parts)
        + ") AS e CROSS JOIN h ORDER BY e.txid, e.seq LIMIT $3"
    )


_POSITION_OF = """
SELECT txid FROM mission_events WHERE seq = $1
UNION ALL
SELECT txid FROM vehicle_events WHERE seq = $1
UNION ALL
SELECT txid FROM alert_events WHERE seq = $1
LIMIT 1
"""

_HORIZON = "SELECT pg_snapshot_xmin(pg_current_snapshot())"


def _event(row: asyncpg.Record) -> StreamEvent:
    details = row["details"]
    return StreamEvent(
        kind=EventKind(row["kind"]),
        seq=row["seq"],
        txid=row["txid"],
        facility_id=row["facility_id"],
        subject_id=row["subject_id"],
        event=row["event"],
        from_status=row["from_status"],
        to_status=row["to_status"],
        vehicle_id=row["vehicle_id"],
        actor=row["actor"],
        details=dict(details) if isinstance(details, dict) else {},
        at=row["at"],
    )


class EventReader:
    """Reads the stream through a pool; each call holds a connection for one statement."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def read(
        self,
        after: Position,
        *,
        facility_id: uuid.UUID | None = None,
        kinds: Collection[EventKind] = ALL_KINDS,
        limit: int = DEFAULT_BATCH,
    ) -> Batch:
        """Events after ``after`` that can be sent now, at most ``limit``, in stream order."""
        wanted = frozenset(kinds)
        if not wanted:
            return Batch([], more=False, held=False)
        if limit < 1:
            raise ValueError("limit must be positive")
        sql = _read_sql(wanted, facility_id is not None)
        args: list[Any] = [after.txid, after.seq, limit + 1]
        if facility_id is not None:
            args.append(facility_id)
        rows = await self._pool.fetch(sql, *args)
        events: list[StreamEvent] = []
        held = False
        for row in rows:
            if not row["settled"]:
                held = True
                break
            events.append(_event(row))
        more = len(events) > limit
        return Batch(events[:limit], more=more, held=held)

    async def position_of(self, seq: int) -> Position | None:
        """Where the event with id ``seq`` sits (resume just after it); None if no such event.

        ``seq == 0`` is the beginning of history.
        """
        if seq == 0:
            return START
        txid = await self._pool.fetchval(_POSITION_OF, seq)
        return None if txid is None else Position(int(txid), seq)

    async def ids_since(self, seq: int) -> int:
        """How many event ids were handed out after ``seq``: a cheap upper bound (one
        sequence read, no table scan) of the events a stream resuming there replays."""
        last = await self._pool.fetchval(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM fleet_event_seq"
        )
        return max(int(last) - seq, 0)

    async def live_position(self) -> Position:
        """A position from which only events not yet settled will be sent ("from now on")."""
        horizon = await self._pool.fetchval(_HORIZON)
        return Position(int(horizon), 0)


# Wake-ups ---------------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class Subscription:
    """One stream's link to the hub: ``await wait(seconds)`` until woken, closed or timed out."""

    kinds: frozenset[EventKind]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    async def wait(self, within_s: float) -> None:
        """Return when woken (or closed), or after ``within_s`` seconds; clears the wake-up."""
        if not self.wake.is_set() and within_s > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within_s):
                    await self.wake.wait()
        self.wake.clear()

    def notify(self) -> None:
        self.wake.set()


class HubClosed(Exception):
    """The hub was closed (the daemon is shutting down): no new streams."""


class EventHub:
    """The one LISTEN connection of the process, shared by every open stream.

    Why shared rather than a connection per stream: a LISTEN connection is held for as long
    as a stream is open, so per-stream connections taken from the pool would let a dozen
    dashboards starve the API and the writers of connections; opened outside the pool they
    would cost the server one backend per client. One connection, opened outside the pool
    when the first stream subscribes and closed when the last one leaves, wakes them all;
    each stream then reads with a pool connection for the duration of one statement.

    The listening task re-connects (with back-off) when the connection drops, and wakes
    every stream after each (re)connect, since a notification may have been missed.
    :meth:`close` ends every stream (their :class:`Subscription` is marked closed and
    woken) and waits for the task, which closes the connection.
    """

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout_s: float = 5.0,
        max_backoff_s: float = 30.0,
        password: SecretStr | None = None,
        supervised: bool = False,
    ) -> None:
        self._dsn = dsn
        self._password = password
        self._connect_timeout = connect_timeout_s
        self._backoff = Backoff(BackoffPolicy(base_s=0.5, cap_s=max(max_backoff_s, 0.5)))
        self._subs: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._closed = False
        #: The supervisor runs :meth:`run`; the hub never starts a task of its own.
        self._supervised = supervised
        self._running = False
        self.listening = False
        self.notifications = 0
        #: Wake-ups sent to the streams so far (notifications and (re)connects): the shared
        #: feed (:mod:`dispatcher.storage.event_feed`) reads again when this moved.
        self.wakeups = 0

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    @property
    def running(self) -> bool:
        """Whether a task listens: the supervisor's (:meth:`run`), or the hub's own, which
        ends soon after the last stream leaves."""
        return self._task is not None or self._running

    @contextlib.asynccontextmanager
    async def subscribe(
        self, kinds: Iterable[EventKind] = ALL_KINDS
    ) -> AsyncIterator[Subscription]:
        """Register a stream for wake-ups while the ``async with`` block runs.

        Raises :class:`HubClosed` once :meth:`close` has been called.
        """
        if self._closed:
            raise HubClosed
        sub = Subscription(frozenset(kinds))
        self._subs.add(sub)
        self._ensure_task()
        try:
            yield sub
        finally:
            self._subs.discard(sub)
            if not self._subs:
                self._changed.set()  # the task closes the connection and ends

    async def run(self) -> None:
        """Listen for as long as streams are open, until :meth:`close`; the supervisor's task.

        Only for a hub made with ``supervised=True``: in a daemon the supervisor runs this
        (task ``fleetd.events``) and closes the hub at shutdown, so no task is started on a
        request's behalf. A hub made without (an app served on its own, in tests) starts
        its listening task when the first stream subscribes instead.
        """
        if not self._supervised:
            raise RuntimeError("this hub runs its own listening task (supervised=False)")
        self._running = True
        try:
            while not self._closed:
                if self._wanted():
                    try:
                        await self._listen()
                    except Exception:  # a bug here must not take the daemon down
                        log.exception("events.listener_failed")
                        await self._pause(self._backoff.next_delay())
                    continue
                self._changed.clear()
                if not self._wanted() and not self._closed:
                    await self._changed.wait()
        finally:
            self.listening = False
            self._running = False

    async def close(self) -> None:
        """End every stream and the listening task (idempotent)."""
        self._closed = True
        for sub in list(self._subs):
            sub.closed = True
            sub.notify()
        self._changed.set()
        task = self._task
        if task is not None:
            await asyncio.wait({task})

    # --- internals --------------------------------------------------------------------

    def _ensure_task(self) -> None:
        if self._supervised:
            self._changed.set()  # wakes run()
            return
        if self._task is None and self._subs and not self._closed:
            self._task = asyncio.create_task(self._run(), name="fleetd.events.listen")

    def _wake_all(self, kind: str | None = None) -> None:
        self.wakeups += 1
        for sub in self._subs:
            if kind is None or kind in sub.kinds or kind not in ALL_KINDS:
                sub.notify()

    def _on_notify(
        self, conn: object, pid: int, channel: str, payload: object
    ) -> None:  # asyncpg listener signature
        self.notifications += 1
        self._wake_all(str(payload))

    async def _run(self) -> None:
        try:
            await self._listen()
        except Exception:  # never let the task die with an unretrieved exception
            log.exception("events.listener_failed")
        finally:
            self.listening = False
            self._task = None
            self._ensure_task()  # a stream subscribed while this task was ending

    def _wanted(self) -> bool:
        return bool(self._subs) and not self._closed

    async def _listen(self) -> None:
        while self._wanted():
            conn = await self._open()
            if conn is None:
                await self._pause(self._backoff.next_delay())
                continue
            self._backoff.reset()
            lost = False

            def on_lost(_: object) -> None:
                nonlocal lost
                lost = True
                self._changed.set()

            conn.add_termination_listener(on_lost)
            try:
                await conn.add_listener(CHANNEL, self._on_notify)
                self.listening = True
                log.debug("events.listening", streams=len(self._subs))
                self._wake_all()  # whatever was committed while we were not listening
                while self._wanted() and not lost and not conn.is_closed():
                    self._changed.clear()
                    await self._changed.wait()
            except _LISTEN_ERRORS as exc:
                log.warning("events.listen_lost", error=describe_error(exc))
            finally:
                self.listening = False
                await self._close_conn(conn)
            if lost and self._wanted():
                log.warning("events.listen_connection_lost")
                await self._pause(self._backoff.next_delay())

    async def _open(self) -> asyncpg.Connection | None:
        try:
            return await connect(
                self._dsn, connect_timeout=self._connect_timeout, password=self._password
            )
        except StorageUnavailable as exc:
            log.warning("events.listen_connect_failed", error=exc.reason)
            return None

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds`` unless the hub is closed or left without streams first."""
        self._changed.clear()
        if not self._wanted():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while self._wanted():
                    self._changed.clear()
                    await self._changed.wait()

    @staticmethod
    async def _close_conn(conn: asyncpg.Connection) -> None:
        if conn.is_closed():
            return
        try:
            await conn.close(timeout=2.0)
        except Exception:  # an already broken connection: drop it without ceremony
            conn.terminate()
