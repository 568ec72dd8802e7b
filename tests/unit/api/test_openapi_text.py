"""The served document states what text inputs accept: no NUL (issue 13, the fuzzed API)."""

from __future__ import annotations

import re
import time
from typing import Any, cast

from dispatcher.api.app import create_app
from dispatcher.api.openapi_text import NO_NUL_PATTERN, state_storable_text
from dispatcher.config import Settings
from dispatcher.services import Services
from tests.unit.api.fakes import StaticFleet


def _doc() -> dict[str, Any]:
    text = {"type": "string", "maxLength": 10}
    return {
        "paths": {
            "/v1/things": {
                "post": {
                    "parameters": [{"name": "q", "in": "query", "schema": dict(text)}],
                    "requestBody": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/In"}}
                        }
                    },
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Out"}}
                            }
                        }
                    },
                }
            }
        },
        "components": {
            "schemas": {
                "In": {
                    "properties": {
                        "name": dict(text),
                        "key": {"type": "string", "pattern": "^[a-z]+$"},
                        "at": {"type": "string", "format": "date-time"},
                        "kind": {"type": "string", "enum": ["a", "b"]},
                        "inner": {"$ref": "#/components/schemas/Inner"},
                    }
                },
                "Inner": {"properties": {"note": {"anyOf": [dict(text), {"type": "null"}]}}},
                "Out": {"properties": {"name": dict(text)}},
            }
        },
    }


def test_request_text_gets_the_pattern_and_nothing_else_changes() -> None:
    doc = state_storable_text(_doc())
    op = doc["paths"]["/v1/things"]["post"]
    assert op["parameters"][0]["schema"]["pattern"] == NO_NUL_PATTERN
    inp = doc["components"]["schemas"]["In"]["properties"]
    assert inp["name"]["pattern"] == NO_NUL_PATTERN
    assert inp["key"]["pattern"] == "^[a-z]+$"  # its own rule stays
    assert "pattern" not in inp["at"] and "pattern" not in inp["kind"]
    inner = doc["components"]["schemas"]["Inner"]["properties"]["note"]["anyOf"][0]
    assert inner["pattern"] == NO_NUL_PATTERN  # reached through a $ref
    # Response-only schemas are the server's to fill: left alone.
    assert "pattern" not in doc["components"]["schemas"]["Out"]["properties"]["name"]


def test_the_pattern_refuses_nul_only() -> None:
    # JSON Schema's \\u0000 escape, as Python's re reads it too.
    pattern = re.compile(NO_NUL_PATTERN)
    assert pattern.match("Ward A, \u00e9\u4e2d\U0001f600\u0012")
    assert not pattern.match("a\x00b")


def test_served_document_states_it() -> None:
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
    doc = create_app(services).openapi()
    ref = doc["components"]["schemas"]["PassengerIn"]["properties"]["ref"]
    assert ref["pattern"] == NO_NUL_PATTERN
