"""The live event stream: ``GET /v1/events`` as Server-Sent Events (``text/event-stream``).

Every mission event and vehicle event, as it commits::

    id: 4711
    event: mission.assigned
    data: {"seq":4711,"type":"mission","event":"assigned","mission_id":"...", ...}

``id`` is the event's ``seq`` (shared sequence ``fleet_event_seq``). A client that
reconnects with ``Last-Event-ID: <id>`` (browsers' ``EventSource`` do this by themselves)
or ``?after=<id>`` gets every event after that one, none lost and none twice; ``after=0``
replays all history; without either the stream starts with what happens from now on. Ids
are unique but *not* increasing: the order is by committing transaction (see
:mod:`dispatcher.storage.event_stream` for why a ``seq > last`` cursor would lose events).

Limits (issue 13, items 2 and 6): at most ``api.max_event_streams`` streams at once (503
beyond) and ``api.max_event_streams_per_token`` per token (429 beyond), both with
``Retry-After``; a resume point more than ``api.event_replay_max`` event ids back is
refused (422), ``after=0`` included once history is longer. A stream ends (after a
``: token no longer valid`` comment) when its token is revoked or expires: checked every
:data:`TOKEN_CHECK_S` through the token cache, so a revocation by another process shows
within the cache's lifetime.

Filters: ``?facility=KEY_OR_ID`` (a facility-scoped token sees only its own facility; it
may name it, naming another is 403) and ``?types=mission,vehicle,alert``.

Mechanics: live streams share one read per wake-up
(:class:`~dispatcher.storage.event_feed.EventFeed`: the last few thousand events in
memory, filtered per stream), so N streams cost one query, not N; a stream resuming from
further back reads at most :data:`BATCH` events per query itself (a pool connection held
for that one statement) until it reaches the feed's window. Each stream writes a batch
and asks again; the client's socket paces it (a slow client holds back its own reads,
never a growing queue: the backlog stays in the feed's window or in PostgreSQL).
It wakes on NOTIFY (one LISTEN connection for the whole process,
:class:`~dispatcher.storage.event_stream.EventHub`) and polls every :data:`POLL_S` as a
fallback; an idle stream sends a ``: keep-alive`` comment every :data:`HEARTBEAT_S`. It
ends when the client goes away, and for every client at once on
:func:`close_event_streams` (daemon shutdown), which also closes the LISTEN connection.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Any, Final

import structlog
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.responses import StreamingResponse
from prometheus_client import Counter
from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send

from dispatcher.api.deps import (
    Principal,
    access_ops,
    bearer_secret,
    caller,
    get_services,
    get_token_cache,
    require,
)
from dispatcher.api.problems import (
    FORBIDDEN,
    TOO_MANY,
    UNAVAILABLE,
    VALIDATION,
    ProblemError,
    problem_responses,
)
from dispatcher.auth.roles import Permission
from dispatcher.ops.access import StreamRefusal, StreamRefused
from dispatcher.ops.streams import SlotRefusal, StreamSlots, TokenWatch
from dispatcher.storage.db import CONNECT_ERRORS
from dispatcher.storage.event_feed import EventFeed
from dispatcher.storage.event_stream import (
    ALL_KINDS,
    Batch,
    EventHub,
    EventKind,
    EventReader,
    HubClosed,
    Position,
    StreamEvent,
    Subscription,
)

log = structlog.get_logger(__name__)

router = APIRouter(tags=["events"])

STREAM_READS = Counter(
    "fleetd_event_stream_reads_total",
    "Reads of the event tables by a stream of its own (resuming from behind the shared "
    "feed's window); live streams share fleetd_event_feed_reads_total.",
)
STREAM_EVENTS_SENT = Counter(
    "fleetd_event_stream_events_sent_total", "Events written to event stream clients."
)
STREAMS_REFUSED = Counter(
    "fleetd_event_streams_refused_total",
    "Event streams refused for lack of a slot, by cap (per_token, total).",
    ["cap"],
)

EVENT_STREAM: Final = "text/event-stream"
#: Events read (and held in memory) per query, per stream.
BATCH: Final = 200
#: Fallback poll when no notification arrives.
POLL_S: Final = 1.0
#: Poll while committed events wait behind an older, still running transaction.
HELD_POLL_S: Final = 0.1
#: Idle streams send a comment line this often (keeps proxies from closing them).
HEARTBEAT_S: Final = 15.0
#: Reconnection delay suggested to EventSource clients (the ``retry:`` field), ms.
RETRY_MS: Final = 2000
_UNREACHABLE: tuple[type[BaseException], ...] = CONNECT_ERRORS

#: Seconds between re-checks of an open stream's token (through the token cache).
TOKEN_CHECK_S: Final = 1.0
#: Seconds a client refused for lack of a stream slot is asked to wait.
SLOT_RETRY_AFTER_S: Final = 5

#: Back-off after a failed read (PostgreSQL away); the stream keeps its position.
ERROR_BACKOFF_S: Final = (0.5, 1.0, 2.0, 5.0)


class MissionEventData(BaseModel):
    """``data`` of a ``mission.*`` event."""

    seq: int
    type: str = Field("mission", description="always 'mission'")
    event: str = Field(description="created, assigned, started, ..., priority_changed")
    mission_id: uuid.UUID
    facility_id: uuid.UUID
    from_status: str | None
    to_status: str | None
    vehicle_id: uuid.UUID | None
    actor: str | None
    details: dict[str, Any]
    at: datetime


class VehicleEventData(BaseModel):
    """``data`` of a ``vehicle.*`` event (``from_status``/``to_status`` on status_changed)."""

    seq: int
    type: str = Field("vehicle", description="always 'vehicle'")
    event: str = Field(description="registered, went_online, went_offline, status_changed, ...")
    vehicle_id: uuid.UUID
    facility_id: uuid.UUID
    from_status: str | None
    to_status: str | None
    details: dict[str, Any]
    at: datetime


class AlertEventData(BaseModel):
    """``data`` of an ``alert.*`` event (raised, cleared, acknowledged)."""

    seq: int
    type: str = Field("alert", description="always 'alert'")
    event: str = Field(description="raised, cleared, acknowledged")
    alert_id: uuid.UUID
    facility_id: uuid.UUID
    vehicle_id: uuid.UUID | None
    actor: str | None
    details: dict[str, Any] = Field(
        description="kind, severity, message, subject_id, vehicle_id, mission_id of the alert"
    )
    at: datetime


def event_data(ev: StreamEvent) -> MissionEventData | VehicleEventData | AlertEventData:
    """The public JSON of one event."""
    if ev.kind is EventKind.ALERT:
        return AlertEventData(
            seq=ev.seq,
            event=ev.event,
            alert_id=ev.subject_id,
            facility_id=ev.facility_id,
            vehicle_id=ev.vehicle_id,
            actor=ev.actor,
            details=ev.details,
            at=ev.at,
        )
    if ev.kind is EventKind.MISSION:
        return MissionEventData(
            seq=ev.seq,
            event=ev.event,
            mission_id=ev.subject_id,
            facility_id=ev.facility_id,
            from_status=ev.from_status,
            to_status=ev.to_status,
            vehicle_id=ev.vehicle_id,
            actor=ev.actor,
            details=ev.details,
            at=ev.at,
        )
    return VehicleEventData(
        seq=ev.seq,
        event=ev.event,
        vehicle_id=ev.subject_id,
        facility_id=ev.facility_id,
        from_status=ev.from_status,
        to_status=ev.to_status,
        details=ev.details,
        at=ev.at,
    )


def encode_event(ev: StreamEvent) -> bytes:
    """One SSE message. JSON has no raw newlines, so ``data`` is a single line."""
    data = event_data(ev).model_dump_json()
    return f"id: {ev.seq}\nevent: {ev.name}\ndata: {data}\n\n".encode()


class EventStreamResponse(StreamingResponse):
    """A ``StreamingResponse`` that always closes its generator when the response ends.

    Starlette cancels the sending task when the client disconnects; if that happens while
    the generator waits at a ``yield``, it would only be finalised whenever the garbage
    collector gets to it. Closing it here runs its ``finally`` (unsubscribe) at once.
    """

    media_type = EVENT_STREAM

    def __init__(
        self,
        content: AsyncIterator[bytes],
        status_code: int = 200,  # FastAPI reads the default for the OpenAPI document
        *,
        headers: dict[str, str] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(content, status_code=status_code, headers=headers)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                aclose = getattr(self.body_iterator, "aclose", None)
                if aclose is not None:
                    await aclose()
            finally:
                if self._on_close is not None:
                    self._on_close()


# The hub --------------------------------------------------------------------------------


def _hub(request: Request) -> EventHub:
    """The app's :class:`EventHub`, created on first use (its connection opens lazily)."""
    state = request.app.state
    hub: EventHub | None = getattr(state, "event_hub", None)
    if hub is None:
        db = get_services(request).settings.database
        hub = EventHub(db.dsn, password=db.password)
        state.event_hub = hub
    return hub


def _feed(request: Request, hub: EventHub) -> EventFeed:
    """The app's shared :class:`EventFeed` (one read per wake-up for every stream)."""
    state = request.app.state
    feed: EventFeed | None = getattr(state, "event_feed", None)
    if feed is None:
        reader = EventReader(get_services(request).pool)
        feed = EventFeed(reader, lambda: hub.wakeups, fresh_s=POLL_S, held_fresh_s=HELD_POLL_S)
        state.event_feed = feed
    return feed


async def close_event_streams(app: FastAPI) -> None:
    """End every open event stream of ``app`` and close its LISTEN connection.

    Call it when the daemon begins to shut down, before asking uvicorn to exit: uvicorn
    waits for open responses to finish, and an event stream never finishes by itself.
    New streams are refused (503) afterwards. Idempotent.
    """
    hub: EventHub | None = getattr(app.state, "event_hub", None)
    if hub is None:
        hub = EventHub("")  # never connects: only marks the app as closed for new streams
        app.state.event_hub = hub
    await hub.close()


# Parameters ------------------------------------------------------------------------------


def _invalid(field: str, message: str) -> ProblemError:
    return ProblemError(
        422,
        "Invalid request",
        f"1 invalid value(s): {field}.",
        type=VALIDATION,
        errors=[(field, message)],
    )


def _kinds(types: list[str] | None) -> frozenset[EventKind]:
    if not types:
        return ALL_KINDS
    wanted: set[EventKind] = set()
    for part in ",".join(types).split(","):
        name = part.strip()
        if not name:
            continue
        try:
            wanted.add(EventKind(name))
        except ValueError:
            raise _invalid(
                "query.types", f"unknown type {name!r} (expected mission, vehicle, alert)"
            ) from None
    return frozenset(wanted) or ALL_KINDS


def _resume_id(last_event_id: str | None, after: int | None) -> tuple[int, str] | None:
    """The event id to resume after: the header wins (EventSource sends it on reconnect)."""
    if last_event_id is not None and last_event_id.strip():
        text = last_event_id.strip()
        if not text.isdigit() or len(text) > 19:
            raise _invalid("header.Last-Event-ID", "must be an event id (a non-negative integer)")
        return int(text), "header.Last-Event-ID"
    if after is not None:
        return after, "query.after"
    return None


async def _facility_filter(
    request: Request, principal: Principal, facility: str | None
) -> uuid.UUID | None:
    scope = await access_ops(request).event_scope(caller(principal, request), facility)
    if not isinstance(scope, StreamRefused):
        return scope
    if scope.reason is StreamRefusal.UNKNOWN_FACILITY:
        raise _invalid("query.facility", f"unknown facility {facility!r}")
    raise ProblemError(
        403,
        "Forbidden",
        "This token sees the events of its own facility only.",
        type=FORBIDDEN,
    )


# Route -----------------------------------------------------------------------------------


@router.get(
    "/events",
    response_class=EventStreamResponse,
    summary="Live stream of mission and vehicle events (Server-Sent Events)",
    responses={
        200: {
            "description": "An endless `text/event-stream`; each message has `id` (the "
            "event's seq), `event` (`mission.<event>` or `vehicle.<event>`) and `data` "
            "(JSON: MissionEventData, VehicleEventData or AlertEventData).",
            "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
        },
        **problem_responses(401, 403, 422, 429, 503),
    },
)
async def stream_events(
    request: Request,
    principal: Principal = Depends(require(Permission.EVENTS_VIEW)),
    facility: Annotated[str | None, Query(max_length=64, description="Facility key or id")] = None,
    types: Annotated[
        list[str] | None,
        Query(max_length=4, description="mission, vehicle, alert (comma-separated or repeated)"),
    ] = None,
    after: Annotated[
        int | None,
        Query(ge=0, le=2**63 - 1, description="Resume after this event id (0: all history)"),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=32, description="Resume after this event id"),
    ] = None,
) -> EventStreamResponse:
    """Open the stream; see the module documentation for order, resuming and filters."""
    kinds = _kinds(types)
    facility_id = await _facility_filter(request, principal, facility)
    services = get_services(request)
    reader = EventReader(services.pool)
    hub = _hub(request)
    feed = _feed(request, hub)
    if hub.closed:
        raise ProblemError(
            503,
            "Shutting down",
            "The daemon is shutting down; reconnect shortly.",
            type=UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    resume = _resume_id(last_event_id, after)
    try:
        await feed.start()  # before the stream's own start: a live stream is inside it
    except _UNREACHABLE as exc:
        raise ProblemError(
            503, "Storage unavailable", "PostgreSQL is not reachable.", type=UNAVAILABLE
        ) from exc
    start = await _start(reader, resume, services.settings.api.event_replay_max)
    slots = _slots(request)
    slot = slots.acquire(principal.token_id)  # no await from here to the response
    if isinstance(slot, SlotRefusal):
        STREAMS_REFUSED.labels(slot.value).inc()
        raise _no_slot(slot, slots)
    watch = TokenWatch(
        services.pool, bearer_secret(request), get_token_cache(request), every_s=TOKEN_CHECK_S
    )
    log.info(
        "events.stream_opened",
        facility_id=str(facility_id) if facility_id else None,
        kinds=sorted(kinds),
        resume=resume[0] if resume else None,
        token_id=str(principal.token_id),
    )
    return EventStreamResponse(
        _stream(request, (reader, feed), hub, start, (facility_id, kinds), watch),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        on_close=lambda: slots.release(slot),
    )


async def _start(reader: EventReader, resume: tuple[int, str] | None, replay_max: int) -> Position:
    """Where the stream starts: now, or after the resume id (within the replay bound)."""
    try:
        if resume is None:
            return await reader.live_position()
        seq, field = resume
        if await reader.ids_since(seq) > replay_max:
            raise _invalid(
                field,
                f"more than {replay_max} events ago: read history from the lists "
                "(GET /v1/missions...) and stream from now on",
            )
        found = await reader.position_of(seq)
    except _UNREACHABLE as exc:
        raise ProblemError(
            503, "Storage unavailable", "PostgreSQL is not reachable.", type=UNAVAILABLE
        ) from exc
    if found is None:
        raise _invalid(field, f"no event has id {seq}")
    return found


def _slots(request: Request) -> StreamSlots:
    """The app's stream counter, made on first use from ``api`` settings."""
    state = request.app.state
    slots: StreamSlots | None = getattr(state, "stream_slots", None)
    if slots is None:
        api = get_services(request).settings.api
        slots = StreamSlots(total=api.max_event_streams, per_token=api.max_event_streams_per_token)
        state.stream_slots = slots
    return slots


def _no_slot(refusal: SlotRefusal, slots: StreamSlots) -> ProblemError:
    retry = {"Retry-After": str(SLOT_RETRY_AFTER_S)}
    if refusal is SlotRefusal.PER_TOKEN:
        detail = f"This token has {slots.per_token} event streams open already; close one."
        return ProblemError(429, "Too many streams", detail, type=TOO_MANY, headers=retry)
    detail = f"fleetd serves {slots.total} event streams at most; retry later."
    return ProblemError(503, "Too many streams", detail, type=UNAVAILABLE, headers=retry)


async def _read(
    reader: EventReader,
    feed: EventFeed,
    position: Position,
    filters: tuple[uuid.UUID | None, frozenset[EventKind]],
) -> tuple[Batch, Position]:
    """The next batch for one stream: from the shared feed when the stream is inside its
    window, else (resuming from further back) read by the stream itself."""
    facility_id, kinds = filters
    shared = await feed.after(position, facility_id=facility_id, kinds=kinds, limit=BATCH)
    if shared is not None:
        return shared.batch, shared.through
    batch = await reader.read(position, facility_id=facility_id, kinds=kinds, limit=BATCH)
    STREAM_READS.inc()
    return batch, (batch.events[-1].position if batch.events else position)


async def _stream(
    request: Request,
    readers: tuple[EventReader, EventFeed],
    hub: EventHub,
    position: Position,
    filters: tuple[uuid.UUID | None, frozenset[EventKind]],
    watch: TokenWatch,
) -> AsyncIterator[bytes]:
    """The body of one stream: events as they settle, heartbeats while idle; it ends when
    the token stops being valid."""
    reader, feed = readers
    kinds = filters[1]
    sent = 0
    started = time.monotonic()
    try:
        async with hub.subscribe(kinds) as sub:
            # Subscribed first: a client that has read this line misses no wake-up.
            yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
            last_write = time.monotonic()
            failures = 0
            while not sub.closed:
                if not await watch.still_valid():
                    log.info("events.token_invalid")
                    yield b": token no longer valid\n\n"
                    return
                try:
                    batch, position = await _read(reader, feed, position, filters)
                except Exception as exc:
                    if get_services(request).pool.is_closing():
                        return
                    delay = ERROR_BACKOFF_S[min(failures, len(ERROR_BACKOFF_S) - 1)]
                    failures += 1
                    log.warning("events.read_failed", error=str(exc), retry_in_s=delay)
                    await _idle(sub, delay)
                    continue
                failures = 0
                if batch.events:
                    STREAM_EVENTS_SENT.inc(len(batch.events))
                    yield b"".join(encode_event(ev) for ev in batch.events)
                    sent += len(batch.events)
                    last_write = time.monotonic()
                if batch.more:
                    continue
                idle_for = time.monotonic() - last_write
                if idle_for >= HEARTBEAT_S:
                    yield b": keep-alive\n\n"
                    last_write = time.monotonic()
                    idle_for = 0.0
                wait = HELD_POLL_S if batch.held else POLL_S
                await sub.wait(min(wait, HEARTBEAT_S - idle_for))
    except HubClosed:
        return
    finally:
        log.info(
            "events.stream_closed",
            events_sent=sent,
            seconds=round(time.monotonic() - started, 3),
        )


async def _idle(sub: Subscription, seconds: float) -> None:
    """Wait ``seconds`` (or until the hub closes); wake-ups do not cut a back-off short."""
    deadline = time.monotonic() + seconds
    while not sub.closed and (left := deadline - time.monotonic()) > 0:
        await sub.wait(left)
