"""``fleetd audit verify``: seal pending audit rows, then check the hash chain (in Postgres).

Exit status 0 when the chain verifies, 1 when it is broken (the first bad row is named) or
the database cannot be reached. Rows still unsealed at the end (committed after the seal,
or another sealer held the lock for too long) are counted, not checked, and do not fail it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import asyncpg

from dispatcher.audit.anchors import Anchor, check_anchors, parse_anchor
from dispatcher.audit.checkpoints import parse_checkpoints, read_key
from dispatcher.audit.log import ChainReport, seal_all, verify_chain
from dispatcher.cli.api_client import quiet_logging
from dispatcher.cli.common import settings_from_args


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``audit verify``."""
    parser = subparsers.add_parser(
        "audit",
        help="check the audit trail",
        description="Work with the append-only, hash-chained audit log.",
    )
    sub = parser.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = sub.add_parser(
        "verify",
        help="re-compute the hash chain and report the first broken row",
        description=(
            "Seal the audit rows committed so far, then read audit_log in chain (seq) order "
            "and re-compute every row's hash. Prints OK with the number of rows and the head "
            "hash (keep a copy elsewhere to detect truncation), or the id of the first row "
            "that breaks the chain and why (exit 1); both with the number of rows not sealed "
            "yet (not covered by the check)."
        ),
    )
    verify.add_argument(
        "--batch", type=int, default=5000, metavar="N", help="rows per query (default 5000)"
    )
    verify.add_argument(
        "--expect-head",
        action="append",
        default=[],
        metavar="SEQ:HASH",
        help="a head printed by an earlier verify (or a checkpoint): that row must still "
        "exist with that hash, else the chain was cut short or rewritten (repeatable)",
    )
    verify.add_argument(
        "--checkpoints",
        type=Path,
        metavar="FILE",
        help="check every checkpoint in FILE (audit.checkpoint_file) the same way; their "
        "MACs are checked with audit.checkpoint_key_file",
    )
    verify.set_defaults(func=_verify)


def format_report(report: ChainReport) -> str:
    """The one-line verdict ``fleetd audit verify`` prints."""
    unsealed = f"; {report.unsealed} rows not sealed yet"
    if report.ok:
        head = f", head id {report.last_id} hash {report.head_hash}" if report.last_id else ""
        if report.last_seq is not None and report.head_hash is not None:
            head += f" (anchor {report.last_seq}:{report.head_hash})"
        return f"OK: {report.rows_checked} rows verified{head}{unsealed}"
    return (
        f"BROKEN at row id {report.first_bad_id} "
        f"(after {report.rows_checked - 1} good rows): {report.reason}{unsealed}"
    )


def load_anchors(
    expect_heads: list[str], checkpoints: Path | None, key_file: Path | None
) -> tuple[list[Anchor], list[str]]:
    """Anchors from ``--expect-head`` and ``--checkpoints``, and the checkpoints whose MAC
    fails (forged or edited lines: reported as problems). Raises ValueError/OSError for
    input that cannot be used at all."""
    anchors = [parse_anchor(text) for text in expect_heads]
    problems: list[str] = []
    if checkpoints is None:
        return anchors, problems
    points = parse_checkpoints(checkpoints.read_text(encoding="utf-8").splitlines())
    key = read_key(key_file)
    if key is None and any(p.mac for p in points):
        print("fleetd audit: MACs not checked (no audit.checkpoint_key_file)", file=sys.stderr)
    for number, point in enumerate(points, start=1):
        origin = f"{checkpoints.name}#{number}"
        if key is not None and not point.mac_valid(key):
            problems.append(f"forged: {origin} (seq {point.seq}) has no valid MAC")
            continue
        anchors.append(Anchor(point.seq, point.hash_hex.lower(), origin))
    return anchors, problems


def _verify(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    quiet_logging()
    if args.batch < 1:
        print("fleetd audit: --batch must be positive", file=sys.stderr)
        return 2
    try:
        anchors, problems = load_anchors(
            args.expect_head, args.checkpoints, settings.audit.checkpoint_key_file
        )
    except (ValueError, OSError) as exc:
        print(f"fleetd audit: {exc}", file=sys.stderr)
        return 2
    from dispatcher.storage.db import create_pool
    from dispatcher.storage.errors import StorageError

    async def main() -> ChainReport:
        db = settings.database
        pool = await create_pool(db.dsn, password=db.password, min_size=1, max_size=1)
        try:
            # A verify right after writes should cover them: seal what has committed.
            await seal_all(pool)
            report = await verify_chain(pool, batch=args.batch)
            if anchors:
                problems.extend(await check_anchors(pool, anchors))
            return report
        finally:
            await pool.close()

    try:
        report = asyncio.run(main())
    except StorageError as exc:
        print(f"fleetd audit: {exc}", file=sys.stderr)
        return 1
    except asyncpg.UndefinedTableError:
        print("fleetd audit: no audit_log table (run `fleetd migrate`)", file=sys.stderr)
        return 1
    except asyncpg.UndefinedColumnError:
        print(
            "fleetd audit: audit_log predates migration 0005 (run `fleetd migrate`)",
            file=sys.stderr,
        )
        return 1
    print(format_report(report))
    for problem in problems:
        print(f"ANCHOR {problem}")
    if anchors and not problems:
        print(f"anchors: {len(anchors)} held")
    return 0 if report.ok and not problems else 1
