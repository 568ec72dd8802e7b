"""Pure helpers of dispatcher.api.deps: route templates, audit actor fields, require()."""

from __future__ import annotations

import uuid

import pytest
from fastapi import Request
from starlette.routing import Route

from dispatcher.api.deps import audit_fields, require, route_template
from dispatcher.audit.log import AuditEntry
from dispatcher.auth.principal import Principal
from dispatcher.auth.roles import Role


async def _endpoint(request: Request) -> None:  # pragma: no cover - never called
    return None


def _request(client: tuple[str, int] | None = ("192.0.2.5", 5555)) -> Request:
    scope = {"type": "http", "method": "POST", "path": "/v1/missions", "headers": []}
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


class TestAuditFields:
    def test_fields_from_principal_and_request(self) -> None:
        token, facility = uuid.uuid4(), uuid.uuid4()
        principal = Principal(token, Role.NURSE, facility)
        fields = audit_fields(principal, _request())
        assert fields == {
            "actor_token_id": token,
            "actor_role": "nurse",
            "source": "192.0.2.5",
            "facility_id": facility,
        }
        entry = AuditEntry(
            action="mission.create",
            resource_type="mission",
            resource_id="m1",
            success=True,
            **fields,
        )
        assert entry.actor_role == "nurse"

    def test_resource_facility_wins_for_unscoped_admin(self) -> None:
        resource_facility = uuid.uuid4()
        admin = Principal(uuid.uuid4(), Role.ADMIN, None)
        fields = audit_fields(admin, _request(client=None), facility_id=resource_facility)
        assert fields["facility_id"] == resource_facility
        assert fields["source"] is None


class TestRequire:
    def test_needs_a_permission(self) -> None:
        with pytest.raises(ValueError, match="at least one permission"):
            require()
