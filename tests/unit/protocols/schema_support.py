"""Test support: the VDA 5050 JSON schemas, validators, and hypothesis strategies from schemas.

hypothesis-jsonschema 0.23.1 (the latest release) calls ``many.more()``, an internal
hypothesis API that hypothesis 6.1xx replaced with an iterator protocol. Until it
catches up, :func:`from_schema` hands it a copy of the old ``many`` helper, written
against the public-enough ``ConjectureData`` span/draw methods. The shim is installed
only when needed and only into hypothesis-jsonschema's own module reference, so it
cannot change how hypothesis itself (or anything else) behaves.
"""

from __future__ import annotations

import copy
import json
import types
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.internal.conjecture import utils as cu

#: The published schemas, vendored unchanged (MIT) so every checkout runs the conformance tests.
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "vda5050-2.0"

#: Bounded property runs: enough variety to find a wrong field, quick enough for every run.
PROPERTY_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)

_SCHEMA_KEYWORDS = frozenset(
    {"$schema", "title", "description", "required", "subtopic", "type", "properties"}
)


def require_schemas() -> Path:
    """The schema folder; a checkout without it fails loudly rather than skipping tests."""
    if not SCHEMA_DIR.is_dir():
        pytest.fail(f"VDA 5050 reference schemas not found at {SCHEMA_DIR}")
    return SCHEMA_DIR


@cache
def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((require_schemas() / f"{name}.schema").read_text("utf-8"))
    return data


def vda_schema(name: str) -> dict[str, Any]:
    """One of the six published schemas, as published (a fresh copy)."""
    return copy.deepcopy(_load(name))


def repaired_factsheet_schema() -> dict[str, Any]:
    """factsheet.schema with its top-level definitions moved under ``properties``.

    As published (2.0.0), the property definitions sit beside ``properties`` instead of
    inside it, so the schema checks nothing but the required keys; the same slip repeats
    in ``protocolLimits.maxArrayLens``. This puts both where they were meant to be.
    """
    schema = vda_schema("factsheet")
    _move_into_properties(schema)
    limits = schema["properties"]["protocolLimits"]["properties"]
    _move_into_properties(limits["maxArrayLens"])
    return schema


def _move_into_properties(node: dict[str, Any]) -> None:
    props = node.setdefault("properties", {})
    for key in [k for k in node if k not in _SCHEMA_KEYWORDS]:
        props[key] = node.pop(key)


def validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """A validator of the schema's own dialect ($schema), checking formats it knows."""
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def assert_valid(schema: dict[str, Any], instance: Any) -> None:
    """Fail with the validator's message (path and reason) when ``instance`` is invalid."""
    errors = sorted(validator(schema).iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


# --------------------------------------------------------------------------------------
# hypothesis-jsonschema, with the compatibility shim


class _LegacyMany:
    """hypothesis' pre-6.1xx ``many`` helper: ``while elements.more(): ...``."""

    def __init__(
        self,
        data: Any,
        min_size: int,
        max_size: float,
        average_size: float,
        *,
        forced: int | None = None,
        observe: bool = True,
    ) -> None:
        self.data = data
        self.min_size = min_size
        self.max_size = max_size
        self.forced_size = forced
        self.observe = observe
        self.p_continue = cu._calc_p_continue(average_size - min_size, max_size - min_size)
        self.count = 0
        self.rejections = 0
        self.drawn = False
        self.force_stop = False

    def more(self) -> bool:
        if self.drawn and self.observe:
            self.data.stop_span()
        self.drawn = True
        if self.observe:
            self.data.start_span(cu.ONE_FROM_MANY_LABEL)
        if self.min_size == self.max_size:
            go = self.count < self.min_size
        else:
            forced: bool | None = None
            if self.force_stop:
                forced = False
            elif self.count < self.min_size:
                forced = True
            elif self.count >= self.max_size:
                forced = False
            elif self.forced_size is not None:
                forced = self.count < self.forced_size
            go = self.data.draw_boolean(self.p_continue, forced=forced, observe=self.observe)
        if go:
            self.count += 1
            return True
        if self.observe:
            self.data.stop_span()
        return False

    def reject(self, why: str | None = None) -> None:
        self.count -= 1
        self.rejections += 1
        if self.rejections > max(3, 2 * self.count):
            if self.count < self.min_size:
                self.data.mark_invalid(why)
            else:
                self.force_stop = True


_installed = False


def _install_shim() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    import hypothesis_jsonschema._from_schema as hjs

    if not hasattr(cu.many, "more"):
        shimmed = types.SimpleNamespace(
            **{k: getattr(cu, k) for k in dir(cu) if not k.startswith("__")}
        )
        shimmed.many = _LegacyMany
        hjs.cu = shimmed  # type: ignore[attr-defined,assignment]  # the shim above

    # hypothesis-jsonschema builds the strategy of every nested object afresh at each
    # draw (canonicalising the sub-schema and creating a @composite each time), which
    # made one state example cost seconds. A strategy depends only on its arguments,
    # so memoising the builder changes nothing but the speed.
    build = getattr(hjs, "__from_schema")  # getattr: no name mangling surprises
    memo: dict[tuple[str, int, int], tuple[Any, Any, Any]] = {}

    def memoised(schema: Any, *, alphabet: Any, custom_formats: Any) -> Any:
        key = (json.dumps(schema, sort_keys=True), id(alphabet), id(custom_formats))
        hit = memo.get(key)
        if hit is None:
            strategy = build(schema, alphabet=alphabet, custom_formats=custom_formats)
            # Keep the arguments alive with the entry, so their ids cannot be reused.
            hit = memo[key] = (strategy, alphabet, custom_formats)
        return hit[0]

    setattr(hjs, "__from_schema", memoised)


#: Extra (vendor) properties generated into objects: short scalars.
_EXTRA_VALUES = {"type": ["string", "number", "boolean", "null"], "maxLength": 8}


def bounded(schema: dict[str, Any], *, max_items: int = 2, max_extra: int = 2) -> dict[str, Any]:
    """A copy of ``schema`` that only admits small instances: same rules, smaller examples.

    Arrays get ``maxItems``; objects may carry up to ``max_extra`` extra properties, with
    short scalar values. Every instance is still valid against the original schema.
    Without this, hypothesis-jsonschema draws huge nested extras and discards ~99% of
    its attempts as too large, and a state property test takes minutes.
    """
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "array":
                node.setdefault("maxItems", max_items)
            if node.get("type") == "object" and "additionalProperties" not in node:
                node["additionalProperties"] = _EXTRA_VALUES
                node.setdefault("maxProperties", len(node.get("properties", {})) + max_extra)
            for key, value in node.items():
                if key != "additionalProperties":
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


_strategies: dict[str, st.SearchStrategy[Any]] = {}


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """hypothesis-jsonschema's ``from_schema`` on :func:`bounded` ``schema`` (cached)."""
    key = json.dumps(schema, sort_keys=True)
    strategy = _strategies.get(key)
    if strategy is None:
        _install_shim()
        from hypothesis_jsonschema import from_schema as _from_schema

        strategy = _strategies[key] = _from_schema(bounded(schema))
    return strategy
