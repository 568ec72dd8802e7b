"""Liveness, readiness and metrics. No authentication (probes and Prometheus call these).

- ``GET /healthz``: 200 while the supervisor's main loop ticked within
  :data:`HEARTBEAT_MAX_AGE_S`, else 503 (the process is wedged; restart it).
- ``GET /readyz``: named pings (Postgres ``SELECT 1``, Redis ``PING``, the MQTT broker
  session), each with its latency and a timeout of :data:`PING_TIMEOUT_S`; 200 only when
  all pass, else 503 naming the failed ones. The answer is cached for
  :data:`READY_CACHE_S` and concurrent calls share one round of pings, so anonymous
  callers cannot turn the probe into database and Redis load (issue 13, item 12).
  ``degraded`` (still 200) names what works in a reduced way: ``postgres`` unreachable
  while the local spool takes mission events and audit rows (dispatch goes on from
  memory), ``spool`` rows waiting to be flushed, ``broker_drops`` the broker dropped
  messages since fleetd started (``$SYS/broker/publish/messages/dropped`` grew). A full
  spool with the database away is a failure (503). While the daemon shuts down (SIGTERM)
  the status is ``draining`` with 503, so a load balancer sends new work elsewhere;
  ``/healthz`` still answers 200 (the process is alive and finishing its writes).
  ``leadership`` maps each facility key to ``active`` or ``standby`` (active/standby
  daemons; a standby is ready too).
- ``GET /metrics``: the Prometheus default registry in the text exposition format.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel

from dispatcher.api.deps import get_services
from dispatcher.services import Services

router = APIRouter(tags=["health"])
log = structlog.get_logger(__name__)

HEARTBEAT_MAX_AGE_S = 10.0
PING_TIMEOUT_S = 1.0
#: Seconds a readiness answer is reused (probes call every few seconds; more is a flood).
READY_CACHE_S = 1.0


class Liveness(BaseModel):
    status: str
    heartbeat_age_s: float | None
    draining: bool = False


class Check(BaseModel):
    ok: bool
    latency_ms: float
    error: str | None = None


class Readiness(BaseModel):
    status: str
    checks: dict[str, Check]
    failed: list[str]
    degraded: list[str] = []
    draining: bool = False
    spool_rows: int | None = None
    spool_bytes: int | None = None
    broker_dropped: int | None = None
    #: Facility key -> "active" | "standby": whether this daemon dispatches it now.
    leadership: dict[str, str] | None = None


@router.get(
    "/healthz",
    response_model=Liveness,
    summary="Liveness: the daemon's main loop is turning",
    responses={503: {"model": Liveness, "description": "The main loop is stalled"}},
)
async def healthz(request: Request) -> JSONResponse:
    """200 while the main loop's heartbeat is fresh, 503 when it is older than the limit."""
    services = get_services(request)
    try:
        age: float | None = time.monotonic() - services.loop_heartbeat()
    except Exception:
        log.exception("health.heartbeat_failed")
        age = None
    ok = age is not None and age <= HEARTBEAT_MAX_AGE_S
    draining = services.is_draining()
    body = Liveness(
        status=("draining" if draining else "ok") if ok else "stalled",
        heartbeat_age_s=round(age, 3) if age is not None else None,
        draining=draining,
    )
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


async def _ping_postgres(services: Services) -> bool:
    return bool(await services.pool.fetchval("SELECT 1") == 1)


async def _ping_redis(services: Services) -> bool:
    return bool(await services.redis.ping())


async def _ping_broker(services: Services) -> bool:
    return services.broker_connected()


#: The readiness pings, by name. Each returns True when the dependency is usable.
PINGS: dict[str, Callable[[Services], Awaitable[bool]]] = {
    "postgres": _ping_postgres,
    "redis": _ping_redis,
    "broker": _ping_broker,
}


async def _run_ping(
    name: str, ping: Callable[[Services], Awaitable[bool]], services: Services
) -> tuple[str, Check]:
    started = time.perf_counter()
    error: str | None = None
    try:
        async with asyncio.timeout(PING_TIMEOUT_S):
            ok = await ping(services)
        if not ok:
            error = "not connected"
    except TimeoutError:
        ok, error = False, f"no answer within {PING_TIMEOUT_S:g} s"
    except Exception as exc:  # any failure of the dependency means "not ready"
        ok, error = False, type(exc).__name__
        log.warning("health.ping_failed", check=name, error=repr(exc))
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    return name, Check(ok=ok, latency_ms=latency_ms, error=error)


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: Postgres, Redis and the MQTT broker are reachable",
    responses={503: {"model": Readiness, "description": "At least one dependency failed"}},
)
async def readyz(request: Request) -> JSONResponse:
    """Ping every dependency concurrently; 200 when all answer, else 503 listing the failed.

    The result is reused for :data:`READY_CACHE_S` seconds.
    """
    cache: ReadyCache | None = getattr(request.app.state, "ready_cache", None)
    if cache is None:
        cache = request.app.state.ready_cache = ReadyCache(READY_CACHE_S)
    services = get_services(request)
    if services.is_draining():
        # Not cached and no pings: the answer is "send work elsewhere" whatever they say.
        body = Readiness(status="draining", checks={}, failed=[], draining=True)
        return JSONResponse(body.model_dump(), status_code=503)
    body = await cache.get(lambda: _readiness(services))
    return JSONResponse(body.model_dump(), status_code=503 if body.failed else 200)


async def _readiness(services: Services) -> Readiness:
    results = await asyncio.gather(
        *(_run_ping(name, ping, services) for name, ping in PINGS.items())
    )
    checks = dict(results)
    failed = [name for name, check in checks.items() if not check.ok]
    degraded: list[str] = []
    body: dict[str, int | None] = {}
    durable = services.durable
    if durable is not None:
        spool = durable.spool
        body.update(spool_rows=len(spool), spool_bytes=spool.size)
        if "postgres" in failed and spool.has_room():
            failed.remove("postgres")
            degraded.append("postgres")
        if not spool.empty:
            degraded.append("spool")
    if services.broker_dropped is not None:
        dropped, since_start = services.broker_dropped()
        body["broker_dropped"] = dropped
        if since_start > 0:
            degraded.append("broker_drops")
    status = "not_ready" if failed else "degraded" if degraded else "ready"
    roles = services.leadership() if services.leadership is not None else None
    return Readiness(
        status=status, checks=checks, failed=failed, degraded=degraded, leadership=roles, **body
    )


class ReadyCache:
    """The last readiness answer, reused for ``ttl_s``; one round of pings at a time."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._lock = asyncio.Lock()
        self._value: Readiness | None = None
        self._until = 0.0

    async def get(self, compute: Callable[[], Awaitable[Readiness]]) -> Readiness:
        """The cached answer, or a fresh one (callers arriving meanwhile wait for it)."""
        if self._value is not None and time.monotonic() < self._until:
            return self._value
        async with self._lock:
            if self._value is None or time.monotonic() >= self._until:
                self._value = await compute()
                self._until = time.monotonic() + self.ttl_s
            return self._value


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    """The default Prometheus registry, text exposition format."""
    return Response(content=generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
