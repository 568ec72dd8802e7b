"""Check the audit chain in the database against heads recorded elsewhere.

An anchor is ``(seq, hash)``: the row at chain position ``seq`` had that hash when it was
recorded (``fleetd audit verify`` printed it, or an ``audit.checkpoint`` wrote it). The
row must still be there with the same hash; otherwise the chain was cut short (the
position no longer exists) or rewritten (the hashes were re-computed after a change).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg

_ANCHOR = re.compile(r"^(\d+):([0-9a-fA-F]{64})$")


@dataclass(frozen=True, slots=True)
class Anchor:
    seq: int
    hash_hex: str
    #: Where it came from, for the report ("--expect-head", "checkpoints.jsonl:12").
    origin: str


def parse_anchor(text: str, origin: str = "--expect-head") -> Anchor:
    """``SEQ:HASH`` (hash as 64 hex digits) -> Anchor; ValueError otherwise."""
    match = _ANCHOR.match(text.strip())
    if match is None or int(match[1]) < 1:
        raise ValueError(f"{origin} {text!r}: expected SEQ:HASH (a position and 64 hex digits)")
    return Anchor(int(match[1]), match[2].lower(), origin)


def anchor_problems(
    anchors: Sequence[Anchor], found: Mapping[int, str], last_seq: int | None
) -> list[str]:
    """What is wrong with the chain given the hashes ``found`` at the anchors' positions
    and the chain's last position. Empty when every anchor holds."""
    problems = []
    for a in anchors:
        have = found.get(a.seq)
        if have is None:
            end = f"ends at seq {last_seq}" if last_seq is not None else "is empty"
            problems.append(f"truncated: {a.origin} names seq {a.seq}, the chain {end}")
        elif have != a.hash_hex:
            problems.append(
                f"rewritten: {a.origin} has seq {a.seq} hash {a.hash_hex}, the database {have}"
            )
    return problems


async def check_anchors(pool: asyncpg.Pool, anchors: Sequence[Anchor]) -> list[str]:
    """:func:`anchor_problems` against the database behind ``pool``."""
    rows = await pool.fetch(
        "SELECT seq, hash FROM audit_log WHERE seq = ANY($1::bigint[])",
        sorted({a.seq for a in anchors}),
    )
    last_seq = await pool.fetchval("SELECT max(seq) FROM audit_log")
    found = {r["seq"]: bytes(r["hash"]).hex() for r in rows}
    return anchor_problems(anchors, found, last_seq)
