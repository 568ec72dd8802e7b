"""Dispatch strategies compared offline: ``optimise`` against ``greedy`` on one workload.

Runs ``fleetd sim evaluate``'s discrete-event simulation (sim.evaluate) of the scenario
``eval-85`` (configs/scenarios/eval-85.toml: 10 robots, 2 drivers, 90 missions an hour
for four simulated hours, about 85 % fleet utilisation under ``greedy``) once per
strategy, with the daemon's default dispatch and planner settings and the deterministic
stop, and prints one table: mean and p95 pickup wait, on-time rate, empty distance per
mission, utilisation and re-plan wall time (p50/p99 of the full plans).

    .venv/bin/python benchmarks/sim_strategies.py [--scenario eval-85] [--hours H]
        [--missions-per-hour R] [--solution-limit 20] [--reports DIR]

Target (issue 17): ``optimise`` at least 20 % lower mean pickup wait than ``greedy``.
Not a test: it prints figures. The simulated outcome is deterministic for the scenario's
seed; the re-plan times are wall times of this machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dispatcher.config import Settings
from sim.evaluate.configured import options_from_settings
from sim.evaluate.engine import Evaluation
from sim.evaluate.site import load_site
from sim.report import compute_kpis, write_report
from sim.report.kpi import Kpis
from sim.scenario import load_scenario


def _f(value: float | None, scale: float = 1.0, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value * scale:,.{digits}f}"


def row(strategy: str, k: Kpis, wall_s: float) -> str:
    urgent = k.wait_by_priority.get("urgent")
    return (
        f"| `{strategy}` | {_f(k.wait.mean_s)} | {_f(k.wait.p95_s)} | "
        f"{_f(urgent.mean_s if urgent is not None else None)} | "
        f"{_f(k.on_time_rate, 100, 1)} % | {_f(k.empty_distance_per_mission_m)} | "
        f"{k.missions_served:,} / {k.missions_created:,} | {_f(k.utilisation, 100, 1)} % | "
        f"{_f(k.replan_p50_ms, 1, 1)} | {_f(k.replan_p99_ms, 1, 1)} | {wall_s:,.0f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="eval-85")
    parser.add_argument("--hours", type=float, default=None, help="override the duration")
    parser.add_argument(
        "--missions-per-hour", type=float, default=None, help="override the workload's rate"
    )
    parser.add_argument("--solution-limit", type=int, default=20)
    parser.add_argument("--reports", type=Path, default=None, help="write both reports here")
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    if args.hours is not None:
        scenario = scenario.model_copy(update={"duration_s": args.hours * 3600.0})
    if args.missions_per_hour is not None:
        workload = scenario.workload.model_copy(
            update={"missions_per_hour": args.missions_per_hour}
        )
        scenario = scenario.model_copy(update={"workload": workload})
    settings = Settings()
    site = load_site(settings, scenario.facility)
    results: dict[str, tuple[Kpis, float]] = {}
    for strategy in ("greedy", "optimise"):
        opts = options_from_settings(settings, strategy, args.solution_limit, 30.0)
        began = time.perf_counter()
        record = Evaluation(scenario, site, opts).run()
        results[strategy] = (compute_kpis(record), time.perf_counter() - began)
        if args.reports is not None:
            write_report(record, args.reports / f"{scenario.name}-{strategy}")
        print(f"  {strategy}: done in {results[strategy][1]:.0f} s", file=sys.stderr)
    print(
        f"\n{scenario.name}: {scenario.fleet.robots} robots, {scenario.fleet.drivers} drivers, "
        f"{scenario.workload.missions_per_hour:g} missions/h, "
        f"{scenario.duration_s / 3600:g} simulated hours, seed {scenario.seed}, "
        f"solution limit {args.solution_limit}\n"
    )
    print(
        "| strategy | mean wait s | p95 wait s | urgent mean wait s | on time | "
        "empty m/mission | served / created | utilisation | re-plan p50 ms | "
        "re-plan p99 ms | wall s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for strategy, (k, wall) in results.items():
        print(row(strategy, k, wall))
    g, o = results["greedy"][0].wait.mean_s, results["optimise"][0].wait.mean_s
    if g and o is not None:
        gain = 100.0 * (g - o) / g
        verdict = "met" if gain >= 20.0 else "NOT met"
        print(
            f"\noptimise mean pickup wait {gain:+.1f} % lower than greedy (target 20 %: {verdict})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
