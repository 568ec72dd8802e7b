"""OpenAPI ``links``: from the operations that create (or list) resources to those that
use their ids, so a client or a stateful fuzzer can follow them (issue 13, "The API
contract, fuzzed from outside").

Added to the generated document by :func:`install_links`; targets are named by method and
path, their ``operationId`` looked up in the document (FastAPI derives them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from fastapi import FastAPI

from dispatcher.api.openapi_text import state_storable_text

#: (method, path, status) of a source -> link name -> (method, path, parameters) of a target.
LINKS: Final[dict[tuple[str, str, str], dict[str, tuple[str, str, dict[str, str]]]]] = {
    ("post", "/v1/missions", "201"): {
        "GetMission": ("get", "/v1/missions/{mission_id}", {"mission_id": "$response.body#/id"}),
        "CancelMission": (
            "post",
            "/v1/missions/{mission_id}/cancel",
            {"mission_id": "$response.body#/id"},
        ),
        "ChangePriority": (
            "post",
            "/v1/missions/{mission_id}/priority",
            {"mission_id": "$response.body#/id"},
        ),
    },
    ("post", "/v1/zones", "201"): {
        "GetZone": ("get", "/v1/zones/{zone_id}", {"zone_id": "$response.body#/id"}),
        "DeleteZone": ("delete", "/v1/zones/{zone_id}", {"zone_id": "$response.body#/id"}),
        "StopZone": (
            "post",
            "/v1/zones/{zone_id}/emergency-stop",
            {"zone_id": "$response.body#/id"},
        ),
    },
    ("get", "/v1/vehicles", "200"): {
        "GetFirstVehicle": (
            "get",
            "/v1/vehicles/{vehicle_id}",
            {"vehicle_id": "$response.body#/items/0/id"},
        ),
        "SetFirstVehicleMaintenance": (
            "post",
            "/v1/vehicles/{vehicle_id}/maintenance",
            {"vehicle_id": "$response.body#/items/0/id"},
        ),
    },
}


def add_links(doc: dict[str, Any]) -> dict[str, Any]:
    """Add :data:`LINKS` to an OpenAPI document (in place; returned for convenience)."""
    paths = doc["paths"]
    for (method, path, status), targets in LINKS.items():
        response = paths[path][method]["responses"][status]
        links = response.setdefault("links", {})
        for name, (t_method, t_path, parameters) in targets.items():
            links[name] = {
                "operationId": paths[t_path][t_method]["operationId"],
                "parameters": dict(parameters),
            }
    return doc


def install_links(app: FastAPI) -> None:
    """Make ``app`` serve its OpenAPI document with :data:`LINKS` (and its text inputs'
    no-NUL rule, :mod:`dispatcher.api.openapi_text`)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = state_storable_text(add_links(generate()))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
