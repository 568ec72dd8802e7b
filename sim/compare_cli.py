"""``fleetd sim compare A B``: two report folders side by side, with the differences.

Registered on ``fleetd sim``'s subcommands with :func:`register`. Prints Markdown to
stdout (and writes it to ``--out`` when given).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "compare",
        help="compare two simulation report folders (KPIs side by side, B minus A)",
        description="Put two report folders (fleetd sim run / evaluate) side by side.",
    )
    p.add_argument("a", type=Path, help="first report folder (A)")
    p.add_argument("b", type=Path, help="second report folder (B)")
    p.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sim.report import ReportError, compare_markdown, load_report

    try:
        a, b = load_report(args.a), load_report(args.b)
    except ReportError as exc:
        print(f"fleetd sim compare: {exc}", file=sys.stderr)
        return 2
    text = compare_markdown(a.meta, a.kpis, b.meta, b.kpis, str(args.a), str(args.b))
    print(text)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    return 0
