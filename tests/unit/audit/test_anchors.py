"""Audit anchors and keyed checkpoints: parsing, MACs and the verdicts (no database)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dispatcher.audit.anchors import Anchor, anchor_problems, parse_anchor
from dispatcher.audit.checkpoints import Checkpoint, CheckpointFileError, parse_checkpoints

H1, H2 = "a" * 64, "b" * 64
KEY = b"k" * 32


def _point(seq: int = 5, hash_hex: str = H1) -> Checkpoint:
    return Checkpoint(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "fleetd-1", seq, hash_hex)


class TestParseAnchor:
    def test_seq_and_hash(self) -> None:
        assert parse_anchor(f"12:{H1.upper()}") == Anchor(12, H1, "--expect-head")

    @pytest.mark.parametrize("text", ["", "12", f"0:{H1}", f"x:{H1}", "3:abc", f"3:{H1}0"])
    def test_anything_else_is_refused(self, text: str) -> None:
        with pytest.raises(ValueError, match="SEQ:HASH"):
            parse_anchor(text)


class TestAnchorProblems:
    def test_an_intact_chain_holds_every_anchor(self) -> None:
        assert anchor_problems([Anchor(3, H1, "a")], {3: H1}, 9) == []

    def test_a_missing_position_is_truncation(self) -> None:
        """Cutting the newest rows leaves a valid but shorter chain: the anchor shows it."""
        [problem] = anchor_problems([Anchor(12, H1, "cp#4")], {}, 9)
        assert problem.startswith("truncated: cp#4 names seq 12, the chain ends at seq 9")

    def test_a_different_hash_is_a_rewrite(self) -> None:
        """Re-computed hashes after a change differ at every later position."""
        [problem] = anchor_problems([Anchor(3, H1, "a")], {3: H2}, 9)
        assert problem.startswith("rewritten:")


class TestCheckpoints:
    def test_round_trip_through_a_line(self) -> None:
        point = _point().signed(KEY)
        assert parse_checkpoints([point.to_line(), ""]) == [point]

    def test_mac_covers_every_field(self) -> None:
        """Moving a checkpoint to another position or hash breaks its MAC."""
        point = _point().signed(KEY)
        assert point.mac_valid(KEY)
        for forged in (
            Checkpoint(point.at, point.instance, 6, point.hash_hex, point.mac),
            Checkpoint(point.at, point.instance, point.seq, H2, point.mac),
            Checkpoint(point.at, "other", point.seq, point.hash_hex, point.mac),
        ):
            assert not forged.mac_valid(KEY)
        assert not point.mac_valid(b"another key")
        assert not _point().mac_valid(KEY)  # unkeyed

    def test_a_bad_line_names_its_number(self) -> None:
        with pytest.raises(CheckpointFileError) as info:
            parse_checkpoints([_point().to_line(), '{"seq": "x"}'])
        assert info.value.line == 2
