"""Rejection reasons and the MessageRejected exception."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from protocols.errors import (
    MessageRejected,
    RejectReason,
    check_payload_size,
    field_path,
    rejection_from,
)


class _Sample(BaseModel):
    count: int


class TestRejectReason:
    """Reasons are stable strings (they are metric labels)."""

    def test_values(self) -> None:
        """The set of labels dashboards and alerts rely on."""
        assert {r.value for r in RejectReason} == {
            "oversized",
            "malformed_json",
            "schema_invalid",
            "bad_topic",
            "unknown_topic",
            "identity_mismatch",
            "unknown_vehicle",
            "unknown_map",
            "foreign_map",
            "stale",
            "replayed",
            "version_mismatch",
        }


class TestMessageRejected:
    """The exception carries its data as attributes."""

    def test_attributes_and_text(self) -> None:
        """reason and detail are attributes; str() joins them for a log line."""
        exc = MessageRejected(RejectReason.BAD_TOPIC, "not under 'uagv/v2'")
        assert exc.reason is RejectReason.BAD_TOPIC
        assert exc.detail == "not under 'uagv/v2'"
        assert str(exc) == "bad_topic: not under 'uagv/v2'"

    def test_without_detail(self) -> None:
        """A reason alone is enough."""
        assert str(MessageRejected(RejectReason.STALE)) == "stale"


class TestCheckPayloadSize:
    """Oversized payloads are refused before parsing."""

    def test_at_limit_passes(self) -> None:
        """Exactly the limit is allowed."""
        check_payload_size(b"x" * 1024, 1024)

    def test_over_limit(self) -> None:
        """One byte more is oversized, with both numbers in the detail."""
        with pytest.raises(MessageRejected) as info:
            check_payload_size(b"x" * 1025, 1024)
        assert info.value.reason is RejectReason.OVERSIZED
        assert info.value.detail == "1025 bytes, limit 1024"


class TestRejectionFrom:
    """pydantic errors become malformed_json or schema_invalid."""

    def test_json_syntax_error(self) -> None:
        """A JSON syntax error is malformed_json."""
        with pytest.raises(ValidationError) as info:
            _Sample.model_validate_json(b'{"count": ')
        assert rejection_from(info.value).reason is RejectReason.MALFORMED_JSON

    def test_validation_error(self) -> None:
        """A wrong value is schema_invalid naming the field and the error type."""
        with pytest.raises(ValidationError) as info:
            _Sample.model_validate_json(b'{"count": "many"}')
        exc = rejection_from(info.value)
        assert exc.reason is RejectReason.SCHEMA_INVALID
        assert exc.detail.startswith("count: ")
        assert exc.detail.endswith("[int_parsing]")

    @pytest.mark.parametrize(
        ("loc", "path"),
        [
            (("nodeStates", 2, "sequenceId"), "nodeStates[2].sequenceId"),
            (("errors", 0), "errors[0]"),
            ((), "(message)"),
            (("driving",), "driving"),
        ],
    )
    def test_field_path(self, loc: tuple[int | str, ...], path: str) -> None:
        """Locations read like the JSON they point into."""
        assert field_path(loc) == path
