"""The status view's connection to the daemon: a snapshot over HTTP, then the live event
stream (``GET /v1/events``, Server-Sent Events), resumed with ``Last-Event-ID`` after a
drop, reconnecting with capped, jittered back-off.

:class:`Feed` runs as long as the view does. It tells its :class:`FeedSink` three things:
a fresh snapshot (the data is live), one event, and the loss of the daemon (at once:
the view marks its data stale before the first reconnect attempt). On each (re)connect
it opens the stream first, then reads the snapshot, so no change falls between the two.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import structlog

from dispatcher.retry import Backoff, BackoffPolicy

log = structlog.get_logger(__name__)

#: Longest silence on the stream before it counts as lost (the daemon sends a keep-alive
#: comment every 15 s).
READ_TIMEOUT_S = 20.0
#: Seconds between snapshots for a token that may not read the event stream (a guest).
SNAPSHOT_ONLY_S = 5.0
#: Back-off between reconnect attempts.
RECONNECT = BackoffPolicy(base_s=0.25, cap_s=5.0)
MAX_PAGES = 10


class ApiProblem(Exception):
    """The daemon answered an action with an error: ``status`` and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Snapshot:
    me: dict[str, Any]
    vehicles: list[dict[str, Any]]
    missions: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    zones: list[dict[str, Any]]
    #: ``GET /v1/fleet/summary`` (counts; all a guest token may read); {} when refused.
    summary: dict[str, Any] = field(default_factory=dict)
    #: Lists the token may not read, with why ("vehicles": "403 ...").
    unavailable: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SseMessage:
    id: str | None
    event: str
    data: str


class FeedSink(Protocol):
    def feed_snapshot(self, snapshot: Snapshot) -> None: ...

    def feed_event(self, name: str, data: Mapping[str, Any], event_id: str | None) -> None: ...

    def feed_lost(self, reason: str) -> None: ...


def _message(response: httpx.Response) -> str:
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if isinstance(doc, dict) and (doc.get("title") or doc.get("detail")):
        return f"{response.status_code} {doc.get('title', '')}: {doc.get('detail', '')}".strip()
    return f"{response.status_code} {response.reason_phrase}"


class DaemonClient:
    """Async JSON client for the API calls the view makes."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json", "User-Agent": "fleetd-status"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, read=READ_TIMEOUT_S),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise ApiProblem(response.status_code, _message(response))
        return response.json() if response.content else None

    async def get(self, path: str, **params: Any) -> Any:
        return await self._json(
            "GET", path, params={k: v for k, v in params.items() if v is not None}
        )

    async def post(self, path: str, body: Any = None) -> Any:
        return await self._json("POST", path, json=body)

    async def pages(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await self.get(path, limit=1000, cursor=cursor, **params)
            items.extend(page.get("items", []))
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return items

    async def snapshot(self) -> Snapshot:
        """Everything the view shows; a list the token may not read is left empty and
        named in ``unavailable`` (a guest sees the counts it may, never an error)."""
        unavailable: dict[str, str] = {}

        async def optional(name: str, path: str, **params: Any) -> list[dict[str, Any]]:
            try:
                if name in ("alerts", "zones"):
                    doc = await self.get(path, **params)
                    return list(doc.get("items", []) if isinstance(doc, dict) else doc)
                return await self.pages(path, **params)
            except ApiProblem as exc:
                if exc.status in (403, 404):
                    unavailable[name] = exc.message
                    return []
                raise

        me = await self.get("/v1/me")
        vehicles = await optional("vehicles", "/v1/vehicles")
        missions = await optional(
            "missions", "/v1/missions", status=["pending", "assigned", "in_progress"]
        )
        alerts = await optional("alerts", "/v1/alerts")
        zones = await optional("zones", "/v1/zones")
        summary: dict[str, Any] = {}
        try:
            summary = dict(await self.get("/v1/fleet/summary"))
        except ApiProblem as exc:
            if exc.status not in (403, 404):
                raise
        return Snapshot(me, vehicles, missions, alerts, zones, summary, unavailable)

    async def layout(self, facility: str) -> dict[str, Any] | None:
        try:
            doc = await self.get(f"/v1/facilities/{facility}/layout")
        except ApiProblem:
            return None
        return doc if isinstance(doc, dict) else None

    @staticmethod
    def _id(value: str) -> str:
        return str(uuid.UUID(value))  # only ids go into paths

    async def vehicle_command(self, vehicle_id: str, command: str) -> Any:
        return await self.post(f"/v1/vehicles/{self._id(vehicle_id)}/commands/{command}")

    async def cancel_mission(self, mission_id: str, reason: str) -> Any:
        return await self.post(f"/v1/missions/{self._id(mission_id)}/cancel", {"reason": reason})

    async def resolve_mission(self, mission_id: str, choice: str) -> Any:
        return await self.post(f"/v1/missions/{self._id(mission_id)}/resolve", {"choice": choice})

    async def acknowledge_alert(self, alert_id: str) -> Any:
        return await self.post(f"/v1/alerts/{self._id(alert_id)}/acknowledge")

    async def events(self, last_event_id: str | None) -> AsyncIterator[SseMessage]:
        """The event stream from ``last_event_id`` (from now when None), message by
        message. The first message (``event == "connected"``) says the stream is open."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        async with self._http.stream("GET", "/v1/events", headers=headers) as response:
            if response.status_code >= 400:
                await response.aread()
                raise ApiProblem(response.status_code, _message(response))
            event_id: str | None = None
            name = "message"
            data: list[str] = []
            async for line in response.aiter_lines():
                if line == "":
                    if data:
                        yield SseMessage(event_id, name, "\n".join(data))
                    event_id, name, data = None, "message", []
                    continue
                if line.startswith(":"):
                    if line.startswith(": connected"):
                        yield SseMessage(None, "connected", "")
                    continue
                key, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if key == "id":
                    event_id = value
                elif key == "event":
                    name = value
                elif key == "data":
                    data.append(value)
        raise ConnectionError("the event stream ended")


_LOST_ERRORS: tuple[type[BaseException], ...] = (
    httpx.TransportError,
    httpx.StreamError,
    ConnectionError,
    ApiProblem,
    ValueError,  # a body that is not JSON (a proxy's error page)
)


class Feed:
    """Keeps a :class:`FeedSink` current until cancelled. ``run`` never ends by itself."""

    def __init__(
        self, client: DaemonClient, sink: FeedSink, *, snapshot_only_s: float = SNAPSHOT_ONLY_S
    ) -> None:
        self._client = client
        self._snapshot_only_s = snapshot_only_s
        self.streaming = False
        self._sink = sink
        self._backoff = Backoff(RECONNECT)
        self.last_event_id: str | None = None
        self.connected = False
        self.bad_events = 0

    async def run(self) -> None:
        while True:
            try:
                await self._session()
            except _LOST_ERRORS as exc:
                reason = exc.message if isinstance(exc, ApiProblem) else _why(exc)
                self._lost(reason)
                if isinstance(exc, ApiProblem) and exc.status == 422 and self.last_event_id:
                    self.last_event_id = None  # resume point too old: start afresh
            await self._backoff.wait()

    def _lost(self, reason: str) -> None:
        self.connected = False
        log.info("status.daemon_lost", reason=reason)
        self._sink.feed_lost(reason)

    async def _session(self) -> None:
        stream = self._client.events(self.last_event_id)
        try:
            async for msg in stream:
                self.streaming = True
                if msg.event == "connected":
                    snapshot = await self._client.snapshot()
                    self.connected = True
                    self._backoff.reset()
                    self._sink.feed_snapshot(snapshot)
                    continue
                self._deliver(msg)
        except ApiProblem as exc:
            if exc.status != 403:
                raise
            # This token may not read the event stream (a guest): what it may read is
            # read again every few seconds instead.
            self.streaming = False
            snapshot = await self._client.snapshot()
            self.connected = True
            self._backoff.reset()
            self._sink.feed_snapshot(snapshot)
            await asyncio.sleep(self._snapshot_only_s)
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    def _deliver(self, msg: SseMessage) -> None:
        try:
            data = json.loads(msg.data)
        except ValueError:
            data = None
        if msg.id is not None:
            self.last_event_id = msg.id
        if not isinstance(data, dict):
            self.bad_events += 1
            return
        self._sink.feed_event(msg.event, data, msg.id)


def _why(exc: BaseException) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect to the daemon"
    if isinstance(exc, httpx.ReadTimeout):
        return "no answer from the daemon"
    if isinstance(exc, ConnectionError):
        return str(exc) or "connection lost"
    return f"connection lost ({type(exc).__name__})"
