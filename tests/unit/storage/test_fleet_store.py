"""Pure helpers of the fleet store."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import pytest

from dispatcher.storage.fleet_store import PositionRow, latest_per_key, upsert_positions


@dataclass(frozen=True)
class _Row:
    key: str
    at: int | None
    tag: str


class TestLatestPerKey:
    def test_keeps_greatest_order_per_key(self) -> None:
        """Two rows for one key become the newer one, whatever the arrival order."""
        rows = [_Row("a", 2, "new"), _Row("b", 1, "b"), _Row("a", 1, "old")]
        assert sorted(r.tag for r in latest_per_key(rows, "key", "at")) == ["b", "new"]

    def test_without_order_the_last_wins(self) -> None:
        """With no ordering field, the later row in the batch wins."""
        rows = [_Row("a", 1, "first"), _Row("a", 1, "second")]
        assert [r.tag for r in latest_per_key(rows, "key")] == ["second"]

    def test_a_known_time_beats_none(self) -> None:
        """A row with a time replaces one without."""
        rows = [_Row("a", None, "none"), _Row("a", 1, "timed"), _Row("a", None, "none2")]
        assert [r.tag for r in latest_per_key(rows, "key", "at")] == ["timed"]


class TestValidation:
    async def test_naive_timestamp_refused_before_any_io(self) -> None:
        """Naive datetimes are refused (the pool is never touched)."""
        vid = uuid.uuid4()
        row = PositionRow(vid, vid, 1.0, 2.0, None, None, None, None, None, None, datetime.now())
        with pytest.raises(ValueError, match="timezone-aware"):
            await upsert_positions(None, [row])  # type: ignore[arg-type]

    async def test_empty_batch_is_a_no_op(self) -> None:
        """Nothing to write, no round trip."""
        await upsert_positions(None, [])  # type: ignore[arg-type]
