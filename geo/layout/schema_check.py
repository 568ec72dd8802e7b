"""Validation of a LIF document against the LIF 1.0 JSON schema shipped with fleetd.

One relaxation, on purpose: the schema lists ``stations`` as required in a layout, but the
specification's text marks it optional (section 8.3.3, in italics) and most of its own
examples (10.1 to 10.5, 10.11, 10.12, ...) have none. fleetd follows the text.

A second one, also from the specification's own examples: example 10.13 writes
``stationHeight`` as the string ``"0.0"``. A numeric string there is accepted and read as a
number; anything else still fails.
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError

from geo.layout.errors import LayoutSchemaError


@functools.cache
def _validator() -> Draft7Validator:
    text = resources.files("geo.layout").joinpath("schema/LIF.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    schema = copy.deepcopy(schema)
    layout = schema["definitions"]["layout"]
    layout["required"] = [r for r in layout["required"] if r != "stations"]
    height = schema["definitions"]["station"]["properties"]["stationHeight"]
    schema["definitions"]["station"]["properties"]["stationHeight"] = {
        "anyOf": [height, {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}]
    }
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def _json_path(error: ValidationError) -> str:
    path = "$"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _element_of(document: Any, error: ValidationError) -> tuple[str, str | None, str | None]:
    """(element kind, element id, layout id) of the innermost LIF element holding the error."""
    kinds = {
        "nodes": ("node", "nodeId"),
        "edges": ("edge", "edgeId"),
        "stations": ("station", "stationId"),
    }
    element, element_id, layout_id = "file", None, None
    current: Any = document
    parts = list(error.absolute_path)
    for i, part in enumerate(parts):
        try:
            current = current[part]
        except (KeyError, IndexError, TypeError):
            break
        if not isinstance(current, dict):
            continue
        parent = parts[i - 1] if i > 0 else None
        if parent == "layouts":
            element, layout_id = "layout", _str_or_none(current.get("layoutId"))
            element_id = layout_id
        elif parent in kinds:
            element, key = kinds[str(parent)]
            element_id = _str_or_none(current.get(key))
    return element, element_id, layout_id


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def check_schema(document: Any, source: str = "") -> None:
    """Raise :class:`LayoutSchemaError` for the first schema violation (others in ``also``).

    Errors are ordered by their place in the file so the report is stable.
    """
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(map(str, e.path)))
    if not errors:
        return
    found = []
    for err in errors:
        element, element_id, layout_id = _element_of(document, err)
        found.append(
            LayoutSchemaError(
                f"schema: {err.message}",
                source=source,
                element=element,
                element_id=element_id,
                layout_id=layout_id,
                json_path=_json_path(err),
            )
        )
    first = found[0]
    first.also = tuple(found[1:])
    raise first
