"""Pure helpers of dispatcher.api.deps: route templates, the operations' caller, require()."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi import Request
from starlette.routing import Route

from dispatcher.api.deps import caller, require, route_template
from dispatcher.auth.principal import Principal
from dispatcher.auth.roles import Role
from dispatcher.ops import audit


async def _endpoint(request: Request) -> None:  # pragma: no cover - never called
    return None


def _request(client: tuple[str, int] | None = ("192.0.2.5", 5555)) -> Request:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/v1/missions",
        "headers": [],
    }
    if client is not None:
        scope["client"] = client
    return Request(scope)


class TestRouteTemplate:
    def test_prefix_recovered_from_the_path(self) -> None:
        route = Route("/vehicles/{vehicle_id}", _endpoint)
        scope = {"route": route, "path": "/v1/vehicles/abc"}
        assert route_template(scope) == "/v1/vehicles/{vehicle_id}"

    def test_unprefixed(self) -> None:
        route = Route("/healthz", _endpoint)
        assert route_template({"route": route, "path": "/healthz"}) == "/healthz"

    def test_no_route(self) -> None:
        assert route_template({"path": "/x"}) is None


class TestCaller:
    def test_audit_fields_from_principal_and_request(self) -> None:
        """The audit row of an API caller names its token, role, client and facility."""
        token, facility = uuid.uuid4(), uuid.uuid4()
        principal = Principal(token, Role.NURSE, facility)
        row = audit.entry(
            caller(principal, _request()),
            action="mission.create",
            resource_type="mission",
            resource_id="m1",
            success=True,
        )
        assert (row.actor_token_id, row.actor_role, row.source, row.facility_id) == (
            token,
            "nurse",
            "192.0.2.5",
            facility,
        )

    def test_resource_facility_wins_for_unscoped_admin(self) -> None:
        """An admin token's row carries the facility of the resource it changed."""
        resource_facility = uuid.uuid4()
        admin = Principal(uuid.uuid4(), Role.ADMIN, None)
        row = audit.entry(
            caller(admin, _request(client=None)),
            action="zone.create",
            resource_type="zone",
            resource_id=None,
            success=True,
            facility_id=resource_facility,
        )
        assert row.facility_id == resource_facility
        assert row.source is None


class TestRequire:
    def test_needs_a_permission(self) -> None:
        with pytest.raises(ValueError, match="at least one permission"):
            require()
