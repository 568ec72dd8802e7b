"""Fuzzing of the served OpenAPI document, and hand-written bad input for POST /v1/missions.

Both parts run against the real PostgreSQL and Redis and the app built by
:func:`dispatcher.api.app.create_app` (no vehicle commander, a fixed fleet of three
vehicles, the built-in demo campus as the only facility).

1. **Property-based fuzzing** (schemathesis + hypothesis). The schema is loaded from the
   app itself, ``schemathesis.openapi.from_asgi("/openapi.json", app)``: the document the
   daemon serves. Every operation in it is a test of its own that gets schema-valid
   (positive) and schema-violating (negative) requests, a bounded number per operation,
   once with an admin token (every permission: the validation and business paths) and
   once with a guest token (fleet summary only: the refusal paths). Checks on every
   response:

   - no 5xx (``not_a_server_error``);
   - the status code, content type, headers and body are the documented ones
     (``status_code_conformance``, ``content_type_conformance``,
     ``response_headers_conformance``, ``response_schema_conformance``);
   - schema-violating input is refused with a 4xx (``negative_data_rejection``), a
     missing required header too (``missing_required_header``), and a 405 names the
     allowed methods (``allow_header_conformance``);
   - schema-valid input is accepted (``positive_data_acceptance``, as
     :func:`positive_data_accepted`): the document states every constraint the handlers
     enforce that JSON Schema can say (facility references, cursors, ring sizes,
     coordinate ranges, a slow zone's ``speed_limit_mps``, place-or-point, no NUL in
     text). What it cannot say is listed, with the reason, in :data:`SEMANTIC_REFUSALS`
     (two fields compared, the clock, which places and facilities exist, a valid GEOS
     geometry, an opaque cursor, an admin token having to name the facility of a new
     zone); a 4xx for anything else fails the run.
   - every error under ``/v1`` is an ``application/problem+json`` document, every
     response carries ``X-Request-ID``;
   - a refused POST stores no mission; a guest gets nothing but 4xx outside its
     permission.

   Random ids would only ever meet 404s, so the id-taking operations also draw the ids of
   a few real missions and vehicles (created before the fuzzing), and mission creation
   also draws bodies naming real places: the 200/201/409 answers get their schemas
   checked too.

   How requests travel: schemathesis generates each :class:`~schemathesis.Case`; the test
   serialises it exactly as schemathesis' own transport does (``requests`` preparation of
   ``case.as_transport_kwargs()``) and sends those bytes through ``httpx.ASGITransport``
   on the test's event loop, where the asyncpg pool lives. (``case.call()`` would run the
   app on schemathesis' private event-loop thread, where a pool made on the test's loop
   cannot be used.) ``case.validate_response`` then runs the checks on the response.

   **Stateful** (``test_stateful_links``): schemathesis' state machine follows the
   document's OpenAPI ``links`` (:mod:`dispatcher.api.openapi_links`: a created mission
   or zone to the operations taking its id), with the checks above plus
   ``use_after_free`` and ``ensure_resource_availability``. Positive mission creates name
   real places half the time (a generation hook), and the run must have used a created
   mission and a zone by id successfully.

   schemathesis' other checks, and why they are not in the lists above:

   - ``ignored_auth`` re-sends each request without and with broken credentials on
     schemathesis' own transport, off the test's event loop where the asyncpg pool
     lives. ``test_every_secured_operation_refuses_missing_and_bogus_tokens`` does the
     same on this loop for every operation of the document (and ``test_guest_fuzz``
     checks a real token without the permission).
   - ``unsupported_method`` acts only in schemathesis' coverage phase (``schemathesis
     run``), and ``allow_header_conformance`` only on OPTIONS requests; neither comes up
     in hypothesis-driven cases. ``test_undocumented_methods_are_405_naming_the_documented_ones``
     sends every undocumented method (OPTIONS included) to every path of the document.
     (``allow_header_conformance`` stays in :data:`CHECKS`: it costs nothing.)
   - ``object_level_authorization`` replays a read as other configured identities, on
     schemathesis' transport; fleetd's objects belong to facilities, not to tokens, and
     facility isolation has tests of its own (tests/integration/missions/test_access.py,
     tests/integration/api/test_zones.py, tests/integration/api/test_events.py).
   - ``max_response_time``: no timed assertions; speed is measured by
     benchmarks/api_latency.py.

2. **Hand-written bad input** for ``POST /v1/missions`` (issue 3, "Bad input"): unknown
   fields, wrong types, out-of-range coordinates, pickup equal to dropoff, unknown place,
   a time window in the past, an oversized body (413, by ``Content-Length`` and streamed)
   and malformed JSON (400): each a 4xx problem document naming the field, and no mission
   row stored.

Determinism and budget: hypothesis runs derandomized (``derandomize=True``, no example
database) without deadlines. One database, Redis prefix and app serve the whole module
(``loop_scope="module"``): cloning a PostGIS database per operation would cost more than
the fuzzing. :data:`ADMIN_EXAMPLES` / :data:`GUEST_EXAMPLES` per operation keep the file
well under the 3-minute CI budget on two busy cores.

A 5xx (or another check failure) found by the fuzzer is not fixed here: the operation
gets an entry in :data:`KNOWN_BUGS` (an ``xfail(strict=True)`` naming the bug) and the
failing request goes to the route's owner.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg
import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
import requests
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ensure_resource_availability,
    missing_required_header,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)

from dispatcher.api.app import create_app
from dispatcher.api.openapi_links import LINKS
from dispatcher.auth.roles import Role
from dispatcher.auth.tokens import create_token
from dispatcher.config import FacilitySettings, Settings
from dispatcher.fleet_sync import FleetWriter
from dispatcher.links.assembly import VehicleLinks, build_vehicle_links
from dispatcher.services import Services
from dispatcher.storage.db import create_pool
from dispatcher.storage.fleet_store import sync_facilities
from dispatcher.storage.telemetry import TelemetryWriter
from fleet.model import OperatingMode, VehicleKey, VehicleKind
from fleet.record import VehicleRecord
from fleet.registry import FleetRegistry
from geo.facility_maps import FacilityMaps
from tests.conftest import ADMIN_DSN, REDIS_URL, _dsn_for, free_port
from tests.unit.api.fakes import StaticFleet

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Budget --------------------------------------------------------------------------------

#: Requests per operation with the admin token (positive and negative cases mixed).
ADMIN_EXAMPLES = 40
#: Requests per operation with the guest token (refusals are shallow: fewer suffice).
GUEST_EXAMPLES = 15

#: Base URL the requests are prepared with (the ASGI transport ignores the host).
BASE_URL = "http://fleetd.test"
PROBLEM_JSON = "application/problem+json"

#: Refusals of schema-valid requests that JSON Schema cannot state, so the document does
#: not: ``(operation, field, message pattern, why)``. Everything else a schema-valid request
#: gets refused for is a gap in the document (``positive_data_acceptance`` fails on it).
SEMANTIC_REFUSALS: list[tuple[str, str, str, str]] = [
    ("POST /v1/missions", "body.dropoff", "must differ from pickup", "a relation of two fields"),
    ("POST /v1/missions", r"body\.(pickup|dropoff)", "unknown place", "the facility's data"),
    (
        "POST /v1/missions",
        r"body\.window\.",
        "in the past|days from now|after window.start",
        "the clock; two fields",
    ),
    ("POST /v1/missions", r"body\.facility", "unknown facility", "which facilities exist"),
    ("POST /v1/zones", r"(body|query)\.facility", "unknown facility", "which facilities exist"),
    ("GET /v1/zones", r"query\.facility", "unknown facility", "which facilities exist"),
    (
        "POST /v1/zones",
        r"(body|query)\.facility",
        "names another facility",
        "a relation of two fields (body and query)",
    ),
    (
        "POST /v1/zones",
        r"body\.facility",
        "this token covers every facility",
        "depends on the token: a facility's own token need not name it",
    ),
    (
        "POST /v1/zones",
        r"body\.geometry",
        "not closed|invalid (Multi)?Polygon",
        "geometry: closed rings, valid for GEOS",
    ),
    ("*", r"query\.cursor", "cursor", "an opaque cursor: only the server's own are valid"),
]


def _semantic_refusal(label: str, response: Response) -> bool:
    """Whether a 4xx refuses only for reasons listed in :data:`SEMANTIC_REFUSALS`."""
    if response.status_code not in (400, 422):
        return False
    try:
        errors = json.loads(response.content).get("errors") or []
    except (ValueError, AttributeError):
        return False
    return bool(errors) and all(
        any(
            op in ("*", label)
            and re.match(field, e.get("field", ""))
            and re.search(msg, e.get("message", ""))
            for op, field, msg, _why in SEMANTIC_REFUSALS
        )
        for e in errors
    )


@schemathesis.check
def positive_data_accepted(ctx: Any, response: Response, case: Any) -> bool | None:
    """schemathesis' ``positive_data_acceptance``, less the refusals the schema cannot
    state (:data:`SEMANTIC_REFUSALS`)."""
    if _semantic_refusal(case.operation.label, response):
        return None
    return positive_data_acceptance(ctx, response, case)


#: The checks run on every response (none of them re-sends a request).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_accepted,
    missing_required_header,
    allow_header_conformance,
]

#: Checks that follow resources across calls (the stateful run only).
STATEFUL_CHECKS = [use_after_free, ensure_resource_availability]

#: Fixed seed: every run sends the same requests (CI is deterministic). Locally,
#: ``FLEETD_FUZZ_SEED=<n>`` explores other examples and ``FLEETD_FUZZ_EXAMPLES=<n>`` more
#: of them per operation.
FUZZ_SEED = int(os.environ.get("FLEETD_FUZZ_SEED", "5050"))
if os.environ.get("FLEETD_FUZZ_EXAMPLES"):
    ADMIN_EXAMPLES = GUEST_EXAMPLES = int(os.environ["FLEETD_FUZZ_EXAMPLES"])

FUZZ_SETTINGS = settings(
    database=None,  # no replay of failures saved by an earlier run: same requests every run
    deadline=None,  # a busy 2-core CI box makes per-example timings meaningless
    suppress_health_check=[
        HealthCheck.too_slow,  # speed only: real Postgres behind every request
        HealthCheck.function_scoped_fixture,  # app, database and tokens are shared on purpose
    ],
    print_blob=False,
)


# The operations, from the served document ------------------------------------------------


def _excluded(path: str) -> bool:
    """Paths the fuzzer leaves alone."""
    # GET /v1/events is a Server-Sent Events stream that never ends: a request to it would
    # hang the fuzzer. Its filtering and resume (Last-Event-ID) have tests of their own.
    return path == "/v1/events" or path.startswith("/v1/events/")


def _document_only_app() -> FastAPI:
    """The app over Services it never touches: only to list the operations at import."""
    unused = cast(Any, None)
    services = Services(
        settings=Settings(),
        pool=unused,
        redis=unused,
        fleet=StaticFleet(),
        commander=None,
        broker_connected=lambda: True,
        loop_heartbeat=time.monotonic,
    )
    return create_app(services)


def _operation_labels(app: FastAPI) -> list[str]:
    """``"METHOD /path"`` of every operation the app documents, less the excluded ones."""
    methods = {"get", "put", "post", "patch", "delete"}
    return [
        f"{method.upper()} {path}"
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in methods and not _excluded(path)
    ]


#: Collected at import so each operation is a test of its own; the served document is
#: checked against this list by ``test_every_served_operation_is_fuzzed``.
OPERATIONS = _operation_labels(_document_only_app())

#: Operations whose fuzzing found a 5xx (or another check failure) not fixed yet:
#: ``{"METHOD /path": "bug: ..."}``. Each becomes ``xfail(strict=True)``: the suite turns
#: red again as soon as the bug is fixed, and the entry must then be removed.
KNOWN_BUGS: dict[str, str] = {}

#: Operations a guest may call (everything else under /v1 must be refused).
#: What a guest token may read: the summary, the probes, and what the token itself is.
GUEST_ALLOWED = frozenset(
    {"GET /v1/fleet/summary", "GET /v1/me", "GET /healthz", "GET /readyz", "GET /metrics"}
)


def _params(labels: list[str]) -> list[Any]:
    return [
        pytest.param(
            label,
            id=label,
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[label])]
            if label in KNOWN_BUGS
            else [],
        )
        for label in labels
    ]


# Module-wide services: one database, one Redis prefix, one app ----------------------------


@pytest.fixture(scope="module")
def fuzz_settings(pg_template: str) -> Settings:
    """Settings of this module: its own database name, Redis prefix and MQTT namespace."""
    ns = f"fz{uuid.uuid4().hex[:10]}"
    return Settings(
        daemon={"instance_id": f"test-{ns}", "log_format": "console"},
        database={"dsn": _dsn_for(f"fleetd_t_{ns}")},
        redis={"url": REDIS_URL, "key_prefix": f"test:{ns}:"},
        mqtt={"vda_interface": ns, "driver_prefix": f"{ns}/driver/v1", "persistent_session": False},
        api={"port": free_port()},
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(fuzz_settings: Settings, pg_template: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh migrated database of this module's own; dropped afterwards."""
    name = fuzz_settings.database.dsn.rpartition("/")[2]
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    finally:
        await admin.close()
    pool = await create_pool(fuzz_settings.database.dsn, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()
        admin = await asyncpg.connect(ADMIN_DSN)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def redis(fuzz_settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        async for key in client.scan_iter(match=f"{fuzz_settings.redis.key_prefix}*"):
            await client.delete(key)
        await client.aclose()


@pytest.fixture(scope="module")
def facility(fuzz_settings: Settings) -> FacilitySettings:
    """The built-in demo campus (these settings configure no facility)."""
    return fuzz_settings.default_facility


def _vehicle(
    facility: FacilitySettings, kind: VehicleKind, serial: str, lat: float, lon: float
) -> VehicleRecord:
    key = VehicleKey(
        kind=kind, manufacturer="acme" if kind is VehicleKind.ROBOT else "", serial=serial
    )
    return VehicleRecord(
        id=key.id,
        facility_id=facility.id,
        key=key,
        name=serial,
        online=True,
        last_seen=time.time(),
        battery_pct=80.0,
        lat=lat,
        lon=lon,
        heading_deg=90.0,
        position_time=time.time(),
        operating_mode=OperatingMode.AUTOMATIC if kind is VehicleKind.ROBOT else None,
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fleet(
    fuzz_settings: Settings, pool: asyncpg.Pool, facility: FacilitySettings
) -> FleetRegistry:
    """A live registry of three online vehicles on the demo campus, stored in Postgres too.

    Online, so a command has no reason to answer 503 (offline vehicle: "retry later");
    nothing expires them (no liveness task runs here).
    """
    await sync_facilities(pool, fuzz_settings.effective_facilities)
    registry = FleetRegistry(
        maps=FacilityMaps(fuzz_settings.facility_specs),
        default_facility_id=facility.id,
        heartbeat_timeout_s=3600,
    )
    for kind, serial, lat, lon in [
        (VehicleKind.ROBOT, "robot-1", 52.5201, 13.4052),
        (VehicleKind.ROBOT, "robot-2", 52.5218, 13.4061),
        (VehicleKind.DRIVER, "driver-1", 52.5209, 13.4095),
    ]:
        registry.add(_vehicle(facility, kind, serial, lat, lon), announce=False)
    await FleetWriter(pool, registry, interval_s=1.0).flush()  # the vehicles rows
    return registry


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def links(
    fuzz_settings: Settings, fleet: FleetRegistry, redis: aioredis.Redis, pool: asyncpg.Pool
) -> AsyncIterator[VehicleLinks]:
    """The vehicle links over a real MQTT session to the local Mosquitto (commands go out
    under this module's own VDA interface and driver prefix, where nobody listens)."""
    # Never run: nothing publishes under this module's prefixes, so no row is buffered.
    telemetry = TelemetryWriter(pool, max_rows=1000, flush_interval_s=1.0)
    vl = build_vehicle_links(fuzz_settings, fleet, redis, telemetry)
    task = asyncio.create_task(vl.transport.run(), name="fuzz.mqtt")
    try:
        async with asyncio.timeout(10):
            await vl.transport.wait_connected()
        yield vl
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(
    fuzz_settings: Settings,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    fleet: FleetRegistry,
    links: VehicleLinks,
) -> FastAPI:
    """The real app over this module's database, Redis, registry and MQTT session."""
    services = Services(
        settings=fuzz_settings,
        pool=pool,
        redis=redis,
        fleet=fleet,
        commander=links.commander,
        broker_connected=links.transport.is_connected,
        loop_heartbeat=time.monotonic,
    )
    return create_app(services)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as c:
        yield c


@pytest.fixture(scope="module")
def schema(app: FastAPI) -> Any:
    """The OpenAPI document as the app serves it (GET /openapi.json through ASGI)."""
    return schemathesis.openapi.from_asgi("/openapi.json", app)


async def _bearer(
    pool: asyncpg.Pool, role: Role, facility: FacilitySettings | None
) -> dict[str, str]:
    _, secret = await create_token(
        pool,
        role=role,
        facility_id=facility.id if facility is not None else None,
        name=f"fuzz-{role.value}",
        expires_at=None,
    )
    return {"Authorization": f"Bearer {secret}"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def admin(pool: asyncpg.Pool) -> dict[str, str]:
    """Headers of an admin token for every facility."""
    return await _bearer(pool, Role.ADMIN, None)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def guest(pool: asyncpg.Pool, facility: FacilitySettings) -> dict[str, str]:
    """Headers of a guest token (fleet summary only) of the demo campus."""
    return await _bearer(pool, Role.GUEST, facility)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def operator(pool: asyncpg.Pool, facility: FacilitySettings) -> dict[str, str]:
    """Headers of an operator token of the demo campus (for the hand-written cases)."""
    return await _bearer(pool, Role.OPERATOR, facility)


async def _missions(pool: asyncpg.Pool) -> int:
    n: int = await pool.fetchval("SELECT count(*) FROM missions")
    return n


async def _stored(pool: asyncpg.Pool) -> tuple[int, int, int]:
    """Rows a request may change: (missions, mission_events, zones). Audit rows excluded:
    refusals are audited on purpose."""
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM missions), (SELECT count(*) FROM mission_events), "
        "(SELECT count(*) FROM zones)"
    )
    assert row is not None
    return row[0], row[1], row[2]


# Real resources for the id-taking operations --------------------------------------------


def _place_pairs(facility: FacilitySettings) -> list[tuple[str, str]]:
    names = [p.name for p in facility.places]
    return [(a, b) for a in names for b in names if a != b]


#: The demo campus and a margin, counter-clockwise (every test vehicle is inside).
CAMPUS = [[13.4040, 52.5195], [13.4105, 52.5195], [13.4105, 52.5235], [13.4040, 52.5235]]
CAMPUS += [CAMPUS[0]]


def _zone_body(facility: FacilitySettings, name: str, kind: str = "service_area") -> dict[str, Any]:
    body: dict[str, Any] = {
        "facility": facility.key,
        "name": name,
        "kind": kind,
        "geometry": {"type": "Polygon", "coordinates": [CAMPUS]},
    }
    if kind == "slow":
        body["speed_limit_mps"] = 0.8
    return body


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def known_ids(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    facility: FacilitySettings,
    fleet: FleetRegistry,
) -> dict[str, list[str]]:
    """Ids of real resources, by path parameter name: missions (two pending, one
    cancelled, one with a window and passenger), zones (covering every vehicle) and the
    live vehicles."""
    (a, b), (c, d) = _place_pairs(facility)[:2]
    soon = datetime.now(UTC) + timedelta(hours=1)
    bodies: list[dict[str, Any]] = [
        {"pickup": {"place": a}, "dropoff": {"place": b}},
        {"pickup": {"place": c}, "dropoff": {"place": d}, "priority": "urgent"},
        {"pickup": {"lat": 52.5202, "lon": 13.4051}, "dropoff": {"place": b}},
        {
            "pickup": {"place": a},
            "dropoff": {"place": d},
            "window": {"start": soon.isoformat(), "end": (soon + timedelta(hours=1)).isoformat()},
            "passenger": {"ref": "P-1", "display_name": "Ms. F."},
            "requirements": {"vehicle_kind": "robot", "wheelchair_type": "manual"},
        },
    ]
    missions = []
    for body in bodies:
        r = await client.post("/v1/missions", json=body, headers=admin)
        assert r.status_code == 201, r.text
        missions.append(r.json()["id"])
    r = await client.post(f"/v1/missions/{missions[2]}/cancel", json={}, headers=admin)
    assert r.status_code == 200, r.text
    zones = []
    for name, kind in [
        ("fuzz-area", "service_area"),
        ("fuzz-slow", "slow"),
        ("fuzz-no-go", "no_go"),
    ]:
        r = await client.post("/v1/zones", json=_zone_body(facility, name, kind), headers=admin)
        assert r.status_code == 201, r.text
        zones.append(r.json()["id"])
    return {
        "mission_id": missions,
        "zone_id": zones,
        "vehicle_id": [str(v.id) for v in fleet.snapshot()],
    }


class Strategies:
    """Case strategies of the served operations for one token, built once per operation.

    Besides schemathesis' own positive and negative cases, an id-taking operation also
    gets cases on real ids (the rest of the request still generated), and mission and
    zone creation get cases with bodies naming real places and valid polygons: random
    input alone would hardly ever get past 404 or "unknown place".

    The ``Authorization`` header is fixed, never generated: the token is what each test is
    about (a negated security requirement would only ever test the 401 path).
    """

    def __init__(
        self,
        schema: Any,
        headers: dict[str, str],
        *,
        facility: FacilitySettings,
        known_ids: dict[str, list[str]],
    ) -> None:
        self.schema = schema
        self.headers = headers
        self.known_ids = known_ids
        pairs = _place_pairs(facility)
        self.valid_bodies: dict[str, list[dict[str, Any]]] = {
            "POST /v1/missions": [
                {"pickup": {"place": a}, "dropoff": {"place": b}} for a, b in pairs[:8]
            ],
            "POST /v1/zones": [
                _zone_body(facility, f"fuzz-new-{i}", kind)
                for i, kind in enumerate(["service_area", "charging", "slow", "no_go"])
            ],
        }
        self._built: dict[str, st.SearchStrategy[Any]] = {}

    def __call__(self, label: str) -> st.SearchStrategy[Any]:
        if label not in self._built:
            self._built[label] = self._build(label)
        return self._built[label]

    def _build(self, label: str) -> st.SearchStrategy[Any]:
        operation = self.schema.find_operation_by_label(label)
        assert operation is not None, f"{label} is not in the served OpenAPI document"
        modes = [GenerationMode.POSITIVE]
        if list(operation.iter_parameters()) or operation.body:
            modes.append(GenerationMode.NEGATIVE)
        options = [operation.as_strategy(generation_mode=m, headers=self.headers) for m in modes]
        for name, ids in self.known_ids.items():
            if "{" + name + "}" in operation.path:
                options.extend(
                    operation.as_strategy(
                        generation_mode=mode, headers=self.headers, path_parameters={name: value}
                    )
                    for value in ids
                    for mode in modes
                )
        options.extend(
            operation.as_strategy(headers=self.headers, body=body)
            for body in self.valid_bodies.get(label, ())
        )
        return st.one_of(*options)


@pytest.fixture(scope="module")
def admin_cases(
    schema: Any,
    admin: dict[str, str],
    facility: FacilitySettings,
    known_ids: dict[str, list[str]],
) -> Strategies:
    return Strategies(schema, admin, facility=facility, known_ids=known_ids)


@pytest.fixture(scope="module")
def guest_cases(
    schema: Any,
    guest: dict[str, str],
    facility: FacilitySettings,
    known_ids: dict[str, list[str]],
) -> Strategies:
    return Strategies(schema, guest, facility=facility, known_ids=known_ids)


# The fuzzer ---------------------------------------------------------------------------


async def _send(client: httpx.AsyncClient, case: Any) -> httpx.Response:
    """Send ``case`` with the bytes schemathesis' requests transport would put on the wire."""
    kwargs = case.as_transport_kwargs(base_url=BASE_URL)
    prepared = requests.Request(
        method=kwargs["method"],
        url=kwargs["url"],
        headers=kwargs.get("headers"),
        params=kwargs.get("params"),
        cookies=kwargs.get("cookies"),
        json=kwargs.get("json"),
        data=kwargs.get("data"),
        files=kwargs.get("files"),
    ).prepare()
    assert prepared.method is not None
    assert prepared.url is not None
    # requests types its prepared headers and body loosely; what it built here is text
    # headers and a bytes or text body (or none).
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in prepared.headers.items()}
    body = prepared.body
    assert body is None or isinstance(body, bytes | str)
    return await client.request(prepared.method, prepared.url, headers=headers, content=body)


def _describe(case: Any, response: httpx.Response) -> str:
    return (
        f"{case.method} {case.formatted_path} query={case.query!r} "
        f"headers={case.headers!r} body={case.body!r}\n"
        f"-> {response.status_code} {response.headers.get('content-type')}: {response.text[:500]}"
    )


def _check_common(case: Any, response: httpx.Response) -> None:
    """What every answer of fleetd promises beyond the OpenAPI document."""
    assert response.headers.get("x-request-id"), _describe(case, response)
    if response.status_code >= 400 and case.path.startswith("/v1"):
        assert response.headers["content-type"].startswith(PROBLEM_JSON), _describe(case, response)
        assert response.json()["status"] == response.status_code, _describe(case, response)


@pytest.mark.parametrize("label", _params(OPERATIONS))
@settings(FUZZ_SETTINGS, max_examples=ADMIN_EXAMPLES)
@seed(FUZZ_SEED)
@given(data=st.data())
async def test_admin_fuzz(
    label: str,
    admin_cases: Strategies,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    data: st.DataObject,
) -> None:
    """Admin (every permission): no 5xx, documented answers, invalid input refused."""
    case = data.draw(admin_cases(label), label="case")
    before = await _stored(pool) if case.method != "GET" else None
    response = await _send(client, case)
    case.validate_response(response, checks=CHECKS)
    _check_common(case, response)
    if before is not None and response.status_code >= 400:
        after = await _stored(pool)
        assert after == before, "a refused request changed rows\n" + _describe(case, response)


@pytest.mark.parametrize("label", _params(OPERATIONS))
@settings(FUZZ_SETTINGS, max_examples=GUEST_EXAMPLES)
@seed(FUZZ_SEED)
@given(data=st.data())
async def test_guest_fuzz(
    label: str,
    guest_cases: Strategies,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    data: st.DataObject,
) -> None:
    """Guest (fleet summary only): everything else refused with a 4xx; nothing stored."""
    case = data.draw(guest_cases(label), label="case")
    before = await _stored(pool)
    response = await _send(client, case)
    case.validate_response(response, checks=CHECKS)
    _check_common(case, response)
    if label not in GUEST_ALLOWED:
        assert 400 <= response.status_code < 500, _describe(case, response)
        assert await _stored(pool) == before, _describe(case, response)


#: Scenarios of the stateful run, and calls per scenario (each a link followed or a start).
STATEFUL_EXAMPLES = 25
STATEFUL_STEPS = 6


def _stateful_schema(app: FastAPI, facility: FacilitySettings) -> Any:
    """The served document for the state machine, with one generation hook of its own: a
    positive ``POST /v1/missions`` names two real places half the time. Generated place
    names are unknown (a refusal the schema cannot state), so without it no mission would
    ever be created and no mission link followed. (Zones need no such help: each example
    starts with one, :meth:`Machine.setup`, and lists chain to their items. Valid zone
    bodies here made the draws depend on how many zones earlier examples left behind,
    which hypothesis refuses as a flaky strategy.)"""
    stateful = schemathesis.openapi.from_asgi("/openapi.json", app)
    valid: dict[str, list[dict[str, Any]]] = {
        "POST /v1/missions": [
            {"pickup": {"place": a}, "dropoff": {"place": b}} for a, b in _place_pairs(facility)
        ],
    }

    def with_body(case: Any, body: dict[str, Any]) -> Any:
        case.body = json.loads(json.dumps(body))  # a copy of its own
        return case

    @stateful.hook
    def flatmap_case(context: Any, case: Any) -> st.SearchStrategy[Any]:
        bodies = valid.get(context.operation.label) if context.operation is not None else None
        positive = case.meta is not None and case.meta.generation.mode is GenerationMode.POSITIVE
        if not bodies or not positive:
            return st.just(case)
        return st.one_of(st.just(case), st.sampled_from(bodies).map(lambda b: with_body(case, b)))

    return stateful


async def test_stateful_links(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    known_ids: Any,
    facility: FacilitySettings,
) -> None:
    """Follow the document's OpenAPI links (create -> get, cancel, delete, e-stop...) as
    schemathesis' state machine does, with every check on every response, the stateful
    ones (a deleted resource is gone, a created one is there) included.

    The machine runs in a worker thread (hypothesis drives it synchronously); each call
    is sent on the test's event loop, where the pool lives, and waited for from there.
    """
    loop = asyncio.get_running_loop()
    checks = [*CHECKS, *STATEFUL_CHECKS]
    seen: set[tuple[str, int]] = set()

    class Machine(_stateful_schema(app, facility).as_state_machine()):  # type: ignore[misc]
        def call(self, case: Any, **kwargs: Any) -> Any:
            case.headers = {**(case.headers or {}), **admin}
            sent = asyncio.run_coroutine_threadsafe(_send(client, case), loop)
            response = sent.result(60)
            _check_common(case, response)
            seen.add((f"{case.method} {case.path}", response.status_code))
            return Response.from_any(response)

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            recorder = getattr(self, "recorder", None)
            case.validate_response(response, checks=checks, recorder=recorder)

        def setup(self) -> None:
            # Schemathesis also chains list answers to item operations (GET /v1/zones ->
            # DELETE /v1/zones/{id}); a list emptied by an earlier example would make that
            # draw differ between runs (hypothesis: "flaky strategy"). Each example starts
            # with a zone to find, so the server's state is the same at every start.
            body = _zone_body(facility, f"fuzz-start-{uuid.uuid4().hex[:8]}")
            sent = asyncio.run_coroutine_threadsafe(
                client.post("/v1/zones", json=body, headers=admin), loop
            )
            assert sent.result(60).status_code == 201

    run_settings = settings(
        FUZZ_SETTINGS,
        max_examples=STATEFUL_EXAMPLES,
        stateful_step_count=STATEFUL_STEPS,
        derandomize=True,
    )
    await asyncio.to_thread(Machine.run, settings=run_settings)
    # Links were followed: resources created in a scenario were used by id, successfully,
    # missions and zones alike.
    mission_uses = {
        ("GET /v1/missions/{mission_id}", 200),
        ("POST /v1/missions/{mission_id}/cancel", 200),
        ("POST /v1/missions/{mission_id}/priority", 200),
    }
    zone_uses = {
        ("GET /v1/zones/{zone_id}", 200),
        ("DELETE /v1/zones/{zone_id}", 204),
        ("POST /v1/zones/{zone_id}/emergency-stop", 202),
    }
    assert seen & mission_uses and seen & zone_uses, sorted(seen)


async def test_the_document_links_creates_to_their_uses(schema: Any) -> None:
    """Stateful fuzzing needs links: every create names the operations using its id."""
    raw = schema.raw_schema["paths"]
    links = raw["/v1/missions"]["post"]["responses"]["201"]["links"]
    assert {"GetMission", "CancelMission", "ChangePriority"} <= set(links)
    links = raw["/v1/zones"]["post"]["responses"]["201"]["links"]
    assert {"GetZone", "DeleteZone", "StopZone"} <= set(links)
    ids = {op["operationId"] for item in raw.values() for op in item.values()}
    for (method, path, status), targets in LINKS.items():
        served = raw[path][method]["responses"][status]["links"]
        assert all(served[name]["operationId"] in ids for name in targets)


async def test_every_served_operation_is_fuzzed(schema: Any) -> None:
    """The served document has exactly the collected operations (plus the excluded ones)."""
    served = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        served.add(f"{operation.method.upper()} {operation.path}")
    assert {s for s in served if not _excluded(s.split(" ", 1)[1])} == set(OPERATIONS)


# What schemathesis' request-resending checks would do, on the test's own event loop ------

#: Methods a resource may be asked for; HEAD is left out (served wherever GET is).
HTTP_METHODS = ("GET", "PUT", "POST", "PATCH", "DELETE", "OPTIONS")


def _concrete(path: str) -> str:
    """``path`` with every ``{parameter}`` replaced by a well-formed value (a uuid; the
    command name for the vehicle commands)."""
    values = {"command": "pause"}
    return re.sub(
        r"\{(\w+)\}",
        lambda m: values.get(m.group(1), "0b5f0a52-6f3a-4a37-9d62-3b1f7c2a0e11"),
        path,
    )


async def test_undocumented_methods_are_405_naming_the_documented_ones(
    schema: Any, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """``unsupported_method`` and ``allow_header_conformance`` over the whole document: every
    method a path does not document (OPTIONS included) is a 405 whose ``Allow`` lists
    exactly the documented methods. (Those two checks act only in schemathesis' coverage
    phase and on OPTIONS requests, which the hypothesis-driven fuzzing above never sends.)"""
    failures, sent = [], 0
    for path, item in schema.raw_schema["paths"].items():
        documented = {m.upper() for m in item if m.upper() in HTTP_METHODS}
        for method in sorted(set(HTTP_METHODS) - documented):
            sent += 1
            r = await client.request(method, _concrete(path), headers=admin)
            allow = {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}
            if r.status_code != 405 or allow != documented:
                failures.append(f"{method} {path}: {r.status_code} Allow={sorted(allow)}")
    assert not failures, failures
    assert sent >= 4 * len(schema.raw_schema["paths"])  # at most two methods per path


async def test_every_secured_operation_refuses_missing_and_bogus_tokens(
    schema: Any, client: httpx.AsyncClient
) -> None:
    """``ignored_auth`` over the whole document, without its probes on schemathesis' own
    transport (off this loop, where the pool lives): every operation that declares the
    bearer token answers 401 without one and with a well-formed token nobody issued, before
    it looks at path, query or body; the probes and /metrics declare none."""
    bogus = "fltd_" + "A" * 43
    failures, open_ops, secured = [], [], 0
    for path, item in schema.raw_schema["paths"].items():
        for method, operation in item.items():
            if method.upper() not in HTTP_METHODS:
                continue
            if not operation.get("security"):
                open_ops.append(f"{method.upper()} {path}")
                continue
            secured += 1
            for headers in ({}, {"Authorization": f"Bearer {bogus}"}):
                r = await client.request(method.upper(), _concrete(path), headers=headers)
                if r.status_code != 401:
                    failures.append(f"{method.upper()} {path} {headers}: {r.status_code}")
    assert not failures, failures
    assert sorted(open_ops) == ["GET /healthz", "GET /metrics", "GET /readyz"]
    assert secured == len(OPERATIONS) + 1 - len(open_ops)  # + GET /v1/events, not fuzzed
    assert "POST /v1/missions" in OPERATIONS


# Hand-written bad input for POST /v1/missions --------------------------------------------

#: A body the demo campus accepts.
GOOD: dict[str, Any] = {"pickup": {"place": "Ward A"}, "dropoff": {"place": "Radiology"}}


def _at(minutes: int) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


BAD_BODIES = [
    # unknown fields, at the top and nested
    pytest.param({**GOOD, "colour": "red"}, "body.colour", id="unknown-field"),
    pytest.param(
        {**GOOD, "pickup": {"place": "Ward A", "floor": 2}},
        "body.pickup.floor",
        id="unknown-nested",
    ),
    pytest.param(
        {**GOOD, "passenger": {"ref": "P1", "phone": "0301234"}},
        "body.passenger.phone",
        id="unknown-personal-data",
    ),
    # wrong types
    pytest.param({**GOOD, "priority": 3}, "body.priority", id="priority-int"),
    pytest.param({**GOOD, "pickup": "Ward A"}, "body.pickup", id="pickup-string"),
    pytest.param(
        {**GOOD, "pickup": {"lat": "north", "lon": 13.4}}, "body.pickup.lat", id="lat-string"
    ),
    pytest.param({**GOOD, "notes": ["a", "b"]}, "body.notes", id="notes-list"),
    pytest.param(
        {**GOOD, "requirements": {"payload_kg": "heavy"}},
        "body.requirements.payload_kg",
        id="payload-string",
    ),
    pytest.param(
        {**GOOD, "requirements": {"vehicle_kind": "bus"}},
        "body.requirements.vehicle_kind",
        id="unknown-enum",
    ),
    pytest.param([GOOD], "body", id="array-body"),
    # out-of-range coordinates and values
    pytest.param({**GOOD, "pickup": {"lat": 90.5, "lon": 13.4}}, "body.pickup.lat", id="lat>90"),
    pytest.param({**GOOD, "pickup": {"lat": -91, "lon": 13.4}}, "body.pickup.lat", id="lat<-90"),
    pytest.param(
        {**GOOD, "dropoff": {"lat": 52.5, "lon": 180.01}}, "body.dropoff.lon", id="lon>180"
    ),
    pytest.param(
        {**GOOD, "dropoff": {"lat": 52.5, "lon": -200}}, "body.dropoff.lon", id="lon<-180"
    ),
    pytest.param({**GOOD, "pickup": {"lat": 52.5}}, "body.pickup", id="lat-without-lon"),
    pytest.param(
        {**GOOD, "requirements": {"payload_kg": -1}}, "body.requirements.payload_kg", id="payload<0"
    ),
    # pickup equal to dropoff
    pytest.param({**GOOD, "dropoff": {"place": "Ward A"}}, "body.dropoff", id="same-place"),
    pytest.param(
        {**GOOD, "dropoff": {"place": "  ward a "}}, "body.dropoff", id="same-place-other-case"
    ),
    pytest.param(
        {"pickup": {"lat": 52.52, "lon": 13.405}, "dropoff": {"lat": 52.52, "lon": 13.405}},
        "body.dropoff",
        id="same-point",
    ),
    # unknown place, unknown facility
    pytest.param({**GOOD, "pickup": {"place": "Mars"}}, "body.pickup.place", id="unknown-place"),
    pytest.param(
        {**GOOD, "dropoff": {"place": "Lobby"}}, "body.dropoff.place", id="unknown-dropoff-place"
    ),
    # (an unknown facility is 403 for a facility token like a foreign one: issue 13 item 18)
    pytest.param({**GOOD, "facility": "atl\u0000antis"}, "body.facility", id="nul-facility"),
    pytest.param(
        {**GOOD, "pickup": {"place": "Ward\ud800"}}, "body.pickup.place", id="lone-surrogate"
    ),
    # a time window in the past, inverted, too far ahead, without a time zone
    pytest.param(
        {**GOOD, "window": {"start": _at(-120), "end": _at(-60)}}, "body.window.end", id="past"
    ),
    pytest.param(
        {**GOOD, "window": {"start": _at(60), "end": _at(30)}}, "body.window.end", id="inverted"
    ),
    pytest.param(
        {**GOOD, "window": {"start": _at(60 * 24 * 30), "end": _at(60 * 24 * 31)}},
        "body.window.start",
        id="a-month-ahead",
    ),
    pytest.param(
        {**GOOD, "window": {"start": "2030-01-01T10:00:00", "end": "2030-01-01T11:00:00"}},
        "body.window.start",
        id="naive-time",
    ),
    # missing required fields, NUL characters
    pytest.param({"pickup": {"place": "Ward A"}}, "body.dropoff", id="missing-dropoff"),
    pytest.param({**GOOD, "notes": "a\u0000b"}, "body.notes", id="nul-in-notes"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
async def test_bad_mission_is_refused_naming_the_field(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    pool: asyncpg.Pool,
    body: Any,
    field: str,
) -> None:
    """422 problem document whose ``errors`` name the field; no mission stored."""
    before = await _missions(pool)
    # json.dumps escapes what httpx's own encoder refuses (a lone surrogate).
    raw = json.dumps(body)
    headers = {**operator, "Content-Type": "application/json"}
    r = await client.post("/v1/missions", content=raw, headers=headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    problem = r.json()
    assert problem["type"] == "urn:fleetd:problem:validation"
    assert problem["status"] == 422
    fields = [e["field"] for e in problem["errors"]]
    assert field in fields, problem
    assert field in problem["detail"]
    assert await _missions(pool) == before


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"pickup": ', id="truncated"),
        pytest.param(b'{"pickup": {"place": "Ward A"},}', id="trailing-comma"),
        pytest.param(b"{'pickup': 'Ward A'}", id="single-quotes"),
        pytest.param(
            b'{"pickup": {"place": "Ward \xff"}}',
            id="not-utf8",
        ),
        pytest.param(b"pickup=Ward+A", id="form-encoded"),
    ],
)
async def test_malformed_json_is_a_400_problem(
    client: httpx.AsyncClient, operator: dict[str, str], pool: asyncpg.Pool, raw: bytes
) -> None:
    """Not JSON: 400 ``malformed-json`` problem naming ``body`` and where it broke."""
    before = await _missions(pool)
    r = await client.post(
        "/v1/missions",
        content=raw,
        headers={**operator, "Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    problem = r.json()
    assert problem["type"] == "urn:fleetd:problem:malformed-json"
    assert [e["field"] for e in problem["errors"]] == ["body"]
    assert await _missions(pool) == before


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        pytest.param(
            b'{"pickup": {"lat": NaN, "lon": 13.4}, "dropoff": {"place": "Ward A"}}',
            "body.pickup.lat",
            id="NaN",
        ),
        pytest.param(
            b'{"pickup": {"lat": 1e400, "lon": 13.4}, "dropoff": {"place": "Ward A"}}',
            "body.pickup.lat",
            id="overflow-to-inf",
        ),
        pytest.param(b"", "body", id="empty-body"),
        pytest.param(b"null", "body", id="null-body"),
    ],
)
async def test_json_without_a_valid_value_is_a_422_problem(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    pool: asyncpg.Pool,
    raw: bytes,
    field: str,
) -> None:
    """Parsable input that is no valid number or no body at all: 422 naming the field."""
    before = await _missions(pool)
    r = await client.post(
        "/v1/missions", content=raw, headers={**operator, "Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    assert field in [e["field"] for e in r.json()["errors"]]
    assert await _missions(pool) == before


def _oversized(settings: Settings) -> bytes:
    """A syntactically valid mission body just over ``api.max_body_bytes``."""
    notes = "x" * (settings.api.max_body_bytes + 1)
    return json.dumps({**GOOD, "notes": notes}).encode()


async def test_oversized_body_is_413_by_content_length(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    pool: asyncpg.Pool,
    fuzz_settings: Settings,
) -> None:
    """Content-Length over the limit: 413 ``body-too-large`` problem, nothing stored."""
    before = await _missions(pool)
    body = _oversized(fuzz_settings)
    r = await client.post(
        "/v1/missions", content=body, headers={**operator, "Content-Type": "application/json"}
    )
    assert r.status_code == 413, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    assert r.json()["type"] == "urn:fleetd:problem:body-too-large"
    assert str(fuzz_settings.api.max_body_bytes) in r.json()["detail"]
    assert await _missions(pool) == before


async def test_oversized_streamed_body_is_413(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    pool: asyncpg.Pool,
    fuzz_settings: Settings,
) -> None:
    """A chunked body (no Content-Length) is counted as it arrives: 413 too."""
    before = await _missions(pool)
    body = _oversized(fuzz_settings)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 8192):
            yield body[i : i + 8192]

    r = await client.post(
        "/v1/missions", content=chunks(), headers={**operator, "Content-Type": "application/json"}
    )
    assert r.status_code == 413, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    assert r.json()["type"] == "urn:fleetd:problem:body-too-large"
    assert await _missions(pool) == before


async def test_a_good_body_is_still_accepted(
    client: httpx.AsyncClient, operator: dict[str, str], pool: asyncpg.Pool
) -> None:
    """Control: the body the bad cases are derived from is created (201, one row more)."""
    before = await _missions(pool)
    r = await client.post("/v1/missions", json=GOOD, headers=operator)
    assert r.status_code == 201, r.text
    assert await _missions(pool) == before + 1
