"""``fleetd sim evaluate SCENARIO [--strategy NAME]``: the offline evaluation and its report.

Registered on ``fleetd sim``'s subcommands with :func:`register`. Runs the scenario's
workload through the dispatch engine's loop on a simulated clock (sim.evaluate), with
the dispatch and planner settings of the configuration (``--config``), and writes the
report folder (sim.report).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dispatcher.planner import STRATEGIES

#: The planner's deterministic stop for evaluation: solutions per OR-Tools search.
DEFAULT_SOLUTION_LIMIT = 20
#: Each search's cap in seconds (reached, a run may differ between machines).
DEFAULT_SEARCH_CAP_S = 30.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "evaluate",
        help="run a scenario's workload offline against the planner (simulated clock)",
        description=(
            "A discrete-event simulation of the dispatch engine: the scenario's missions, "
            "the configured planner and dispatch rules, vehicles on the facility's travel "
            "times. No broker, no database. Writes a report folder."
        ),
    )
    p.add_argument("scenario", help="scenario name (configs/scenarios/NAME.toml) or a .toml path")
    p.add_argument(
        "--strategy",
        choices=sorted(STRATEGIES),
        default=None,
        help="planner strategy of the full plans (default: [planner] strategy)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="report folder (default reports/SCENARIO-STRATEGY)"
    )
    p.add_argument(
        "--solution-limit",
        type=int,
        default=DEFAULT_SOLUTION_LIMIT,
        help="deterministic stop: solutions per OR-Tools search "
        f"(default {DEFAULT_SOLUTION_LIMIT}); the run is then a function of the scenario",
    )
    p.add_argument(
        "--search-cap",
        type=float,
        default=DEFAULT_SEARCH_CAP_S,
        help=f"seconds any one search may take at most (default {DEFAULT_SEARCH_CAP_S:g})",
    )
    p.add_argument(
        "--hours",
        type=float,
        default=None,
        help="simulate this many hours instead of the scenario's",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dispatcher.cli.common import config_dir_from_args, settings_from_args
    from geo.layout.errors import LayoutError
    from sim.evaluate.configured import options_from_settings
    from sim.evaluate.engine import Evaluation
    from sim.evaluate.site import SiteError, load_site
    from sim.report import write_report
    from sim.scenario import ScenarioError, load_scenario
    from sim.workload_draw import WorkloadError

    if args.solution_limit < 1 or args.search_cap <= 0:
        print(
            "fleetd sim evaluate: --solution-limit must be >= 1, --search-cap > 0", file=sys.stderr
        )
        return 2
    if args.hours is not None and not 0 < args.hours <= 7 * 24:
        print("fleetd sim evaluate: --hours must be above 0 and at most 168", file=sys.stderr)
        return 2
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"fleetd sim evaluate: {exc}", file=sys.stderr)
        return 2
    if args.hours is not None:
        scenario = scenario.model_copy(update={"duration_s": args.hours * 3600.0})
    settings = settings_from_args(args)
    strategy = args.strategy or settings.planner.strategy
    options = options_from_settings(settings, strategy, args.solution_limit, args.search_cap)
    try:
        site = load_site(settings, scenario.facility, config_dir_from_args(args))
    except SiteError as exc:
        print(f"fleetd sim evaluate: {exc}", file=sys.stderr)
        return 2
    except LayoutError as exc:
        print(f"fleetd sim evaluate: invalid layout: {exc.describe()}", file=sys.stderr)
        return 2

    def progress(t_s: float) -> None:
        if not args.quiet and int(t_s) % 900 == 0:
            print(
                f"\r  simulated {t_s / 3600:5.2f} h of {scenario.duration_s / 3600:.2f} h",
                end="",
                file=sys.stderr,
                flush=True,
            )

    try:
        record = Evaluation(scenario, site, options, on_progress=progress).run()
    except WorkloadError as exc:
        print(f"\nfleetd sim evaluate: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(file=sys.stderr)
    folder = args.out or Path("reports") / f"{scenario.name}-{strategy}"
    write_report(record, folder)
    print((folder / "report.md").read_text(encoding="utf-8").split("\n## Faults")[0])
    print(f"report written to {folder}/")
    return 0
