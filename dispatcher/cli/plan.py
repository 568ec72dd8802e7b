"""``fleetd plan solve``: solve one planning problem given in VROOM's JSON format.

Reads a VROOM problem file (the format ``vroom`` reads, and the one planning snapshots are
recorded in), solves it with the planner and writes VROOM's solution format, so the same
file can be handed to ``vroom`` and to fleetd and the two compared. Exit status 0 on a
solution (even with unassigned shipments: they are listed, each with its reason), 2 when
the file cannot be read or does not match the format (the field is named).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dispatcher.cli.common import settings_from_args
from dispatcher.planner import STRATEGIES, PlannerOptions, solve
from dispatcher.planner.vroom_format import ProblemFormatError, parse, problem_from
from dispatcher.planner.vroom_solution import write_solution


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``plan solve``."""
    parser = subparsers.add_parser(
        "plan", help="solve planning problems", description="Work with planning problems."
    )
    sub = parser.add_subparsers(dest="plan_command", metavar="ACTION", required=True)
    solve_p = sub.add_parser(
        "solve",
        help="solve a VROOM-format problem file and print the VROOM-format solution",
        description=(
            "Solve PROBLEM.json (VROOM's problem format: vehicles, shipments, matrices) "
            "and write VROOM's solution format. Unless the file asks for fleetd's live "
            'objective ("fleetd": {"objective": "waiting"}), the objective is VROOM\'s: '
            "serve the most priority, then the most shipments, then least travel cost plus "
            "fixed vehicle costs. See docs/dispatch.md for the fields read."
        ),
    )
    solve_p.add_argument("problem", metavar="PROBLEM.json", type=Path)
    solve_p.add_argument(
        "--time-limit", type=float, metavar="S", help="search time in seconds ([planner])"
    )
    solve_p.add_argument(
        "--strategy", choices=sorted(STRATEGIES), help="planner strategy ([planner])"
    )
    solve_p.add_argument(
        "--candidates",
        type=int,
        metavar="K",
        help="consider only the K vehicles soonest at each pickup (default: all)",
    )
    solve_p.add_argument(
        "--strict-time-limit",
        action="store_true",
        help="cut a problem into parts when VROOM's first solutions would not fit the limit, "
        "so the wall time stays near it, as the live daemon does (default: like `vroom -l`, "
        "the limit bounds the search and VROOM builds its first solutions whatever that "
        "takes; either way only as many of its searches run as can settle in the limit)",
    )
    solve_p.add_argument("-o", "--output", type=Path, metavar="PLAN.json", help="default stdout")
    solve_p.set_defaults(func=_solve)


def _fail(message: str) -> int:
    print(f"fleetd: {message}", file=sys.stderr)
    return 2


def _solve(args: argparse.Namespace) -> int:
    settings = settings_from_args(args).planner
    path: Path = args.problem
    time_limit = settings.time_limit_s if args.time_limit is None else args.time_limit
    if time_limit <= 0:
        return _fail("--time-limit must be positive")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return _fail(f"cannot read {path}: {exc.strerror or exc}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _fail(f"{path}: not JSON: {exc}")
    try:
        vroom_problem = parse(data)
        problem = problem_from(vroom_problem)
    except ProblemFormatError as exc:
        return _fail(f"{path}: {exc.field}: {exc.reason}")
    options = PlannerOptions(
        time_limit_s=time_limit,
        max_candidates=args.candidates,
        prune_above=0,
        improvement_threshold=settings.improvement_threshold,
        vroom_fit_level=args.strict_time_limit,
    )
    plan = solve(problem, args.strategy or settings.strategy, options)
    text = json.dumps(write_solution(vroom_problem, problem, plan), indent=1)
    if args.output is None:
        print(text)
        return 0
    try:
        args.output.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        return _fail(f"cannot write {args.output}: {exc.strerror or exc}")
    return 0
