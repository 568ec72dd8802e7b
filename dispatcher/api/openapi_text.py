"""The OpenAPI document states that text inputs refuse NUL (issue 13, "fuzzed from outside").

Every text input on every route refuses the NUL character with a 422 naming the field
(:mod:`dispatcher.api.text_guard`: PostgreSQL cannot store it). :func:`state_storable_text`
writes that into the document: each request-side string schema (parameters and request
bodies, and the component schemas they reach) without a ``pattern``, ``format``, ``enum``
or ``const`` of its own gets ``pattern: ^[^\\u0000]*$``. (A schema with a pattern of its
own already names which characters it takes; none of fleetd's admits NUL.) A client
generated from the document, or a fuzzer, then sends only text the server stores.

Lone surrogates (``"\\ud800"``), refused too, are not JSON Schema-expressible: a JSON
string with one is no sequence of Unicode characters at all.
"""

from __future__ import annotations

from typing import Any, Final

#: No NUL anywhere in the string.
NO_NUL_PATTERN: Final = "^[^\\u0000]*$"

_COMPONENT_REF = "#/components/schemas/"
_HAS_OWN_RULE = ("pattern", "format", "enum", "const", "contentEncoding")


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_COMPONENT_REF):
            found.add(ref[len(_COMPONENT_REF) :])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _patch(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") == "string" and not any(k in node for k in _HAS_OWN_RULE):
            node["pattern"] = NO_NUL_PATTERN
        for key, value in node.items():
            if key not in ("examples", "example", "default"):
                _patch(value)
    elif isinstance(node, list):
        for value in node:
            _patch(value)


def state_storable_text(doc: dict[str, Any]) -> dict[str, Any]:
    """Add the no-NUL pattern to every request-side string schema (in place; returned)."""
    inputs: list[Any] = []
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            inputs.extend(p.get("schema") for p in operation.get("parameters", []))
            if "requestBody" in operation:
                inputs.append(operation["requestBody"])
    components: dict[str, Any] = doc.get("components", {}).get("schemas", {})
    reached: set[str] = set()
    _refs(inputs, reached)
    pending = list(reached)
    while pending:
        found: set[str] = set()
        _refs(components.get(pending.pop()), found)
        pending.extend(found - reached)
        reached |= found
    _patch(inputs)
    for name in reached:
        _patch(components.get(name))
    return doc
