"""Planner benchmark: fleetd ``optimise`` vs pyvroom on PDPTW, and re-plan latency.

(a) For generated Li & Lim-like PDPTW instances (benchmarks/pdptw_gen.py: random,
clustered and mixed locations, tight and wide windows, seeded), both solvers get the same
VROOM JSON file and the same time limit; pyvroom runs with exploration level 5 and 2
threads. Prints cost, vehicles used, unassigned and wall time per instance, and the mean
cost gap (fleetd minus VROOM, in % of VROOM) per time limit. The objective is VROOM's
(hard windows; served first, then cost = travel + fixed), so costs compare directly.

(b) Re-plan latency: a facility of ``--locations`` points, vehicles and open requests on
it, the live objective, the configured time limit; a first plan, then ``--replans``
re-plans each warm-started from the last with a few requests replaced. p50/p99 of the
wall time of ``solve`` (matrices are built outside the timing).

Runs on a shared 2-core machine: wall times include waiting for the CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pdptw_gen import instance

from dispatcher.planner import (
    Objective,
    Plan,
    PlannerOptions,
    Problem,
    Profile,
    Request,
    Vehicle,
    solve,
)
from dispatcher.planner.vroom_format import read_problem

VARIANTS = (("R", True), ("C", False), ("RC", True))


#: ``--no-fit-level``: fleetd runs VROOM at level 5 whatever the limit (as pyvroom does).
FIT_LEVEL = True


def _fleetd(data: dict[str, Any], seconds: float) -> tuple[int, int, int, float]:
    problem = read_problem(data)
    began = time.monotonic()
    options = PlannerOptions(time_limit_s=seconds, max_candidates=None, vroom_fit_level=FIT_LEVEL)
    plan = solve(problem, "optimise", options)
    wall = time.monotonic() - began
    return sum(r.cost for r in plan.routes), len(plan.routes), len(plan.unserved), wall


def _vroom(path: Path, seconds: float) -> tuple[int, int, int, float]:
    import vroom

    began = time.monotonic()
    problem = vroom.Input.from_json(str(path))
    solution = problem.solve(exploration_level=5, nb_threads=2, timeout=timedelta(seconds=seconds))
    wall = time.monotonic() - began
    summary = solution.to_dict()["summary"]
    return summary["cost"], summary["routes"], summary["unassigned"], wall


def compare(sizes: list[int], limits: list[float], seeds: list[int], variants: list[str]) -> None:
    """Part (a): the fleetd-vs-pyvroom table (one row per seed, size, variant and limit)."""
    print(
        "| shipments | instance | limit s | fleetd cost | veh | unas | wall s "
        "| vroom cost | veh | unas | wall s | gap % |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    gaps: dict[float, list[float]] = {t: [] for t in limits}
    by_size: dict[tuple[float, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed, n in ((s, n) for s in seeds for n in sizes):
            for layout, tight in (v for v in VARIANTS if v[0] in variants):
                data = instance(n, layout, tight, seed=seed + n)
                path = Path(tmp) / f"{n}-{layout}.json"
                path.write_text(json.dumps(data))
                name = f"{layout}-{'tight' if tight else 'wide'}" + (
                    f" s{seed}" if len(seeds) > 1 else ""
                )
                for limit in limits:
                    f = _fleetd(data, limit)
                    v = _vroom(path, limit)
                    gap = 100.0 * (f[0] - v[0]) / v[0] if v[0] and f[2] == v[2] else float("nan")
                    gaps[limit].append(gap)
                    by_size.setdefault((limit, n), []).append(gap)
                    print(
                        f"| {n} | {name} | {limit:g} | {f[0]} | {f[1]} | {f[2]} | {f[3]:.2f} "
                        f"| {v[0]} | {v[1]} | {v[2]} | {v[3]:.2f} | {gap:+.2f} |",
                        flush=True,
                    )
    for (limit, n), values in sorted(by_size.items()):
        ok = [g for g in values if g == g]
        if ok:
            print(f"mean cost gap at {limit:g} s on {n} shipments: {statistics.fmean(ok):+.2f} %")
    for limit, values in gaps.items():
        ok = [g for g in values if g == g]
        mean = statistics.fmean(ok) if ok else float("nan")
        print(
            f"mean cost gap at {limit:g} s: {mean:+.2f} % over {len(ok)} instances "
            f"(negative: fleetd cheaper; instances with different unassigned counts excluded: "
            f"{len(values) - len(ok)})"
        )


def _facility(n: int, rng: np.random.Generator) -> Profile:
    xy = rng.uniform(0, 400, size=(n, 2))  # metres, a campus 400 m across
    metres = np.rint(np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)) * 1.3)
    dist = metres.astype(np.int64)
    return Profile(durations=dist.copy(), costs=dist.copy(), distances=dist)  # 1 m/s


def _requests(
    rng: np.random.Generator, n: int, locations: int, base: int, tag: str
) -> list[Request]:
    out = []
    for i in range(n):
        p, d = (int(x) for x in rng.choice(locations, size=2, replace=False))
        t = base + int(rng.integers(0, 600))
        out.append(
            Request(
                f"{tag}{i}",
                p,
                d,
                pickup_service=60,
                dropoff_service=60,
                pickup_windows=((t, t + 3600),),
                dropoff_windows=((t, t + 7200),),
            )
        )
    return out


def latency(
    fleets: list[int], loads: list[int], locations: int, replans: int, seconds: float
) -> None:
    """Part (b): the re-plan latency table."""
    print("| vehicles | open requests | p50 s | p99 s | max s | served (last) | model vehicles |")
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(5)
    profile = _facility(locations, rng)
    options = PlannerOptions(time_limit_s=seconds)
    for n_v in fleets:
        vehicles = tuple(
            Vehicle(
                f"v{i}",
                start=int(rng.integers(locations)),
                capacity=(1,),
                range_m=20_000,
                reserve_m=2_000,
            )
            for i in range(n_v)
        )
        for n_r in loads:
            reqs = _requests(rng, n_r, locations, 0, "r")
            times: list[float] = []
            previous: Plan | None = None
            plan: Plan | None = None
            for k in range(replans + 1):
                problem = Problem(vehicles, tuple(reqs), {"robot": profile}, Objective.WAITING)
                began = time.monotonic()
                plan = solve(problem, "optimise", options, previous=previous)
                times.append(time.monotonic() - began)
                previous = plan
                churn = max(1, n_r // 20)
                reqs = reqs[churn:] + _requests(rng, churn, locations, 0, f"n{k}-")
            assert plan is not None
            replan = times[1:] or times
            p50 = statistics.median(replan)
            p99 = float(np.percentile(replan, 99))
            served = n_r - len(plan.unserved)
            print(
                f"| {n_v} | {n_r} | {p50:.2f} | {p99:.2f} | {max(replan):.2f} | "
                f"{served}/{n_r} | {int(plan.stats.get('model_vehicles', 0))} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[50, 100, 200],
        help="shipments per instance (Li & Lim has 50 to 500; 400 and 1000 test scaling)",
    )
    parser.add_argument(
        "--variants", nargs="+", choices=[v[0] for v in VARIANTS], default=[v[0] for v in VARIANTS]
    )
    parser.add_argument("--limits", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument(
        "--seed", type=int, nargs="+", default=[1], help="instance seeds (several: one row each)"
    )
    parser.add_argument("--fleets", type=int, nargs="+", default=[50, 500, 5000])
    parser.add_argument("--loads", type=int, nargs="+", default=[20, 200, 1000])
    parser.add_argument("--locations", type=int, default=400)
    parser.add_argument("--replans", type=int, default=5)
    parser.add_argument("--time-limit", type=float, default=1.0, help="re-plan time limit")
    parser.add_argument(
        "--no-fit-level",
        action="store_true",
        help="fleetd keeps VROOM at level 5 even when its constructions overrun the limit",
    )
    parser.add_argument("--skip-compare", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    global FIT_LEVEL
    FIT_LEVEL = not args.no_fit_level
    if not args.skip_compare:
        compare(args.sizes, args.limits, args.seed, args.variants)
        print()
    if not args.skip_latency:
        latency(args.fleets, args.loads, args.locations, args.replans, args.time_limit)


if __name__ == "__main__":
    main()
