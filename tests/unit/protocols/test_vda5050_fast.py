"""The msgspec fast path never accepts what the pydantic reference model refuses.

protocols/vda5050/fast.py promises: whatever its structs accept, the reference model
(protocols/vda5050/models.py) accepts too, with the same values. These properties check
that promise on schema-generated messages and on mutated ones (wrong types, missing
fields, out-of-range and non-finite numbers, nulls, odd timestamps), and that the fast
path does accept the ordinary messages robots send (or it would be no fast path).
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from protocols.vda5050 import fast
from protocols.vda5050.models import State, Visualization
from tests.unit.protocols import vda_examples as ex
from tests.unit.protocols.schema_support import PROPERTY_SETTINGS, from_schema, vda_schema


def reference(model: type[BaseModel], payload: bytes) -> BaseModel | None:
    """The reference verdict, exactly as the receive path asks for it."""
    try:
        return model.model_validate_json(payload, strict=True, by_alias=True, by_name=False)
    except ValidationError:
        return None


def assert_same(ref: Any, got: Any, path: str = "$") -> None:
    """Field-by-field equality between a pydantic model tree and a msgspec struct tree."""
    if isinstance(ref, BaseModel):
        assert isinstance(got, msgspec.Struct), f"{path}: {type(got).__name__}"
        for name in type(ref).model_fields:
            assert_same(getattr(ref, name), getattr(got, name), f"{path}.{name}")
    elif isinstance(ref, list):
        assert isinstance(got, list) and len(got) == len(ref), path
        for i, (r, g) in enumerate(zip(ref, got, strict=True)):
            assert_same(r, g, f"{path}[{i}]")
    elif isinstance(ref, datetime):
        assert isinstance(got, datetime) and got.tzinfo is not None, path
        # Beyond 6 fractional digits msgspec rounds and pydantic truncates: 1 µs apart.
        assert abs(got - ref) <= timedelta(microseconds=1), path
    elif isinstance(ref, Enum):
        assert got is ref, path
    elif isinstance(ref, float):
        assert isinstance(got, float) and got == ref, path
    else:
        assert type(got) is type(ref) and got == ref, f"{path}: {got!r} != {ref!r}"


def check(model: type[BaseModel], payload: bytes, *, must_accept: bool = False) -> None:
    decode = fast.decode_state if model is State else fast.decode_visualization
    got = decode(payload)
    ref = reference(model, payload)
    if got is not None:
        assert ref is not None, "the fast path accepted a message the reference model refuses"
        assert_same(ref, got)
    elif must_accept:
        pytest.fail("the fast path refused an ordinary message")


#: JSON values that break a field in every way a robot's firmware has been seen to.
BAD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "x", "true", "12", "NaN", "2024-05-01", "AUTOMATIC", "FATAL"]),
    st.just([]),
    st.just({}),
    st.just([1, "a"]),
)
#: Raw number spellings json.dumps would never write (overflowing, exponent forms).
RAW_NUMBERS = ["1e400", "-1e400", "1.0", "1e2", "100000000000000000000000", "-0", "0.5e-400"]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((*prefix, key))
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.append((*prefix, i))
            out.extend(_paths(value, (*prefix, i)))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any, delete: bool = False) -> None:
    *parents, last = path
    for key in parents:
        doc = doc[key]
    if delete:
        del doc[last]
    else:
        doc[last] = value


EXAMPLES = [
    ex.state_small,
    ex.state_full,
    ex.state_with_route,
    ex.state_line_guided_idle,
    ex.state_with_vendor_extras,
]


class TestOrdinaryMessages:
    @pytest.mark.parametrize("make", EXAMPLES)
    def test_states_take_the_fast_path(self, make: Any) -> None:
        """The messages robots really send are accepted here, with the reference's values."""
        check(State, ex.encode(make()), must_accept=True)

    def test_visualization_takes_the_fast_path(self) -> None:
        check(Visualization, ex.encode(ex.visualization()), must_accept=True)
        check(Visualization, b"{}", must_accept=True)

    def test_naive_timestamp_means_utc(self) -> None:
        msg = ex.state_small()
        msg["timestamp"] = "2024-05-01T12:00:00.5"
        check(State, ex.encode(msg), must_accept=True)


class TestNeverMoreLenient:
    @PROPERTY_SETTINGS
    @given(data=st.data())
    def test_schema_generated_states(self, data: st.DataObject) -> None:
        """Messages generated from state.schema: same verdict or a fallback, same values."""
        check(State, json.dumps(data.draw(from_schema(vda_schema("state")))).encode())

    @PROPERTY_SETTINGS
    @given(data=st.data())
    def test_schema_generated_visualizations(self, data: st.DataObject) -> None:
        check(
            Visualization,
            json.dumps(data.draw(from_schema(vda_schema("visualization")))).encode(),
        )

    @PROPERTY_SETTINGS
    @given(data=st.data())
    def test_mutated_states(self, data: st.DataObject) -> None:
        """One field of a real state replaced by a wrong value, or deleted."""
        msg = copy.deepcopy(data.draw(st.sampled_from(EXAMPLES))())
        path = data.draw(st.sampled_from(_paths(msg)))
        if data.draw(st.booleans()) and not isinstance(path[-1], int):
            _set(msg, path, None, delete=True)
        else:
            _set(msg, path, data.draw(BAD_VALUES))
        check(State, json.dumps(msg).encode())

    @PROPERTY_SETTINGS
    @given(data=st.data())
    def test_raw_number_spellings(self, data: st.DataObject) -> None:
        """Numbers json.dumps never writes: overflow to infinity, 1.0 for an integer..."""
        msg = copy.deepcopy(ex.state_full())
        numeric = [
            p
            for p in _paths(msg)
            if isinstance(_get(msg, p), int | float) and not isinstance(_get(msg, p), bool)
        ]
        path = data.draw(st.sampled_from(numeric))
        marker = "__raw_number__"
        _set(msg, path, marker)
        raw = data.draw(st.sampled_from(RAW_NUMBERS))
        check(State, json.dumps(msg).replace(f'"{marker}"', raw).encode())

    @pytest.mark.parametrize(
        "stamp",
        [
            "2024-05-01T12:00:00Z",
            "2024-05-01 12:00:00Z",
            "2024-05-01t12:00:00z",
            "2024-05-01T12:00:00.1234567Z",
            "2024-05-01T12:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:60Z",
            "2024-05-01T12:00:00+25:00",
            "20240501T120000Z",
            "2024-05-01T12:00:00-00:00",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
        ],
    )
    def test_timestamp_spellings(self, stamp: str) -> None:
        msg = ex.state_small()
        msg["timestamp"] = stamp
        check(State, ex.encode(msg))

    @pytest.mark.parametrize(
        "payload",
        [b"", b"null", b"[]", b"{", b'{"headerId": 1}', b"\xff\xfe", b'"\\ud800"'],
    )
    def test_not_a_state_at_all(self, payload: bytes) -> None:
        assert fast.decode_state(payload) is None

    def test_duplicate_keys_resolve_like_the_reference(self) -> None:
        """A key given twice: both decoders keep the last value (or the fast path refuses)."""
        body = ex.encode(ex.state_small())
        assert body.startswith(b"{")
        check(State, b'{"driving": true,' + body[1:])


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc
