"""Property: no request body, however odd, makes POST /v1/missions answer 5xx."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.auth.roles import Role
from tests.integration.missions.conftest import TokenFactory

_json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
_any_json = st.recursive(
    _json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
_place = st.one_of(
    st.sampled_from(["Ward A", "Radiology", "ward a", "Lobby"]), st.text(max_size=20)
)
_location = st.one_of(
    st.fixed_dictionaries({"place": _place}),
    st.fixed_dictionaries(
        {"lat": st.floats(-100, 100, allow_nan=False), "lon": st.floats(-200, 200, allow_nan=False)}
    ),
    _any_json,
)
_when = st.one_of(
    st.integers(-10_000, 20_000).map(
        lambda m: (datetime.now(UTC) + timedelta(minutes=m)).isoformat()
    ),
    st.text(max_size=25),
)
_body = st.fixed_dictionaries(
    {"pickup": _location, "dropoff": _location},
    optional={
        "facility": st.one_of(st.sampled_from(["north", "south"]), st.text(max_size=10)),
        "priority": st.one_of(st.sampled_from(["low", "normal", "high", "urgent"]), _any_json),
        "window": st.one_of(st.fixed_dictionaries({"start": _when, "end": _when}), _any_json),
        "requirements": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "vehicle_kind": st.sampled_from(["robot", "driver", "any", "bus"]),
                    "wheelchair_type": st.text(max_size=70),
                    "payload_kg": st.floats(-10, 1000, allow_nan=False),
                },
            ),
            _any_json,
        ),
        "passenger": st.one_of(
            st.fixed_dictionaries(
                {"ref": st.text(max_size=130)}, optional={"display_name": st.text(max_size=210)}
            ),
            _any_json,
        ),
        "notes": st.one_of(st.text(max_size=2100), _any_json),
        "extra": _any_json,
    },
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=_body, key=st.one_of(st.none(), st.sampled_from(["k1", "k2"])))
async def test_create_never_answers_5xx(
    client: httpx.AsyncClient, token: TokenFactory, body: dict[str, Any], key: str | None
) -> None:
    """Every body is created (201/200), or refused with a 4xx problem document."""
    headers = await token(Role.NURSE)
    if key is not None:
        headers["Idempotency-Key"] = key
    r = await client.post("/v1/missions", json=body, headers=headers)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json")
