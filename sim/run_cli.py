"""``fleetd sim run SCENARIO``: a scenario's live run against the configured fleetd."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from dispatcher.cli.common import config_dir_from_args, settings_from_args
from dispatcher.logs import configure_logging
from sim.scenario import FaultRates, Scenario, ScenarioError, load_scenario

if TYPE_CHECKING:
    from dispatcher.config import FacilitySettings, Settings
    from dispatcher.facility_layouts import FacilityLayouts
    from sim.live import LiveOptions


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 100_000.0:
        raise argparse.ArgumentTypeError("a rate per simulated hour, 0 to 100000")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        help="run a scenario live: vehicles over MQTT, missions through the API",
        description="Run a scenario (a name from configs/scenarios/ or a TOML file) against "
        "the running fleetd of the configuration, then write its record to the report "
        "folder. Ctrl-C or SIGTERM stops it early, cleanly.",
    )
    p.add_argument("scenario", metavar="SCENARIO", help="demo, busy-day, faults, scale or a path")
    p.add_argument("--seed", type=int, help="random seed (default: the scenario's)")
    p.add_argument("--duration", type=float, help="simulated seconds (default: the scenario's)")
    p.add_argument("--time-scale", type=float, help="simulated seconds per wall second")
    p.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="report folder (default: .run/reports/<scenario>-<UTC time>)",
    )
    p.add_argument("--daemon-pid", type=int, help="record this process's CPU and memory")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.add_argument(
        "--stop-when-done",
        action="store_true",
        help="end as soon as every mission of the workload is created and finished",
    )
    for kind in FaultRates.model_fields:
        p.add_argument(
            f"--fault-{kind.replace('_', '-')}",
            dest=f"fault_{kind}",
            type=_rate,
            metavar="RATE",
            help=f"{kind} faults per simulated hour (overrides the scenario)",
        )
    p.set_defaults(func=_run)


class _Refused(Exception):
    """Why the run cannot start: printed after ``fleetd sim run:``, exit status 2."""


def _run(args: argparse.Namespace) -> int:
    from sim.live import live_places

    try:
        scenario = _scenario(args)
        settings = settings_from_args(args)
        configure_logging(settings.daemon.log_level, settings.daemon.log_format)
        facility = _facility(settings, scenario.facility)
        loaded, nodes = _layout(args, facility)
        # The places the offline evaluation uses: the same seed, the same missions.
        places = live_places(settings, facility, loaded)
        _check_workload(scenario, places)
    except _Refused as exc:
        print(f"fleetd sim run: {exc}", file=sys.stderr)
        return 2
    options = _options(args, settings, scenario)
    return asyncio.run(_live(scenario, settings, options, nodes, places))


def _scenario(args: argparse.Namespace) -> Scenario:
    """The scenario named on the command line, with the flags' overrides."""
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        raise _Refused(str(exc)) from exc
    update: dict[str, object] = {}
    if args.seed is not None:
        update["seed"] = args.seed
    if args.duration is not None:
        if args.duration <= 0:
            raise _Refused("--duration must be above 0")
        update["duration_s"] = args.duration
    if args.time_scale is not None:
        if not 0.0 < args.time_scale <= 1000.0:
            raise _Refused("--time-scale must be above 0, at most 1000")
        update["time_scale"] = args.time_scale
    rates = {k: getattr(args, f"fault_{k}") for k in FaultRates.model_fields}
    rates = {k: v for k, v in rates.items() if v is not None}
    if rates:
        update["faults"] = scenario.faults.model_copy(update=rates)
    return scenario.model_copy(update=update)


def _facility(settings: Settings, key: str) -> FacilitySettings:
    """The configured facility the scenario runs in."""
    facility = next((f for f in settings.effective_facilities if f.key == key), None)
    if facility is None:
        raise _Refused(f"no facility {key!r} configured")
    return facility


def _layout(
    args: argparse.Namespace, facility: FacilitySettings
) -> tuple[FacilityLayouts | None, tuple[tuple[str, float, float], ...]]:
    """The facility's layouts (None without any) and the robots' start nodes on its
    first map (none without layouts)."""
    from dispatcher.facility_layouts import load_facility
    from geo.layout.errors import LayoutError
    from sim.fleet import start_nodes

    if not (facility.layouts and facility.maps):
        return None, ()
    try:
        loaded = load_facility(facility, config_dir_from_args(args))
    except LayoutError as exc:
        raise _Refused(f"invalid layout: {exc.describe()}") from exc
    return loaded, start_nodes(loaded.documents[0], facility.maps[0].map_id)


def _check_workload(scenario: Scenario, places: Sequence[str]) -> None:
    """Draw the workload once, so a scenario it refuses stops here, before anything starts."""
    from sim.workload_draw import WorkloadError, draw_workload

    try:
        draw_workload(scenario, places)
    except WorkloadError as exc:
        raise _Refused(str(exc)) from exc


def _options(args: argparse.Namespace, settings: Settings, scenario: Scenario) -> LiveOptions:
    """What the command line adds to the scenario: report folder, token, daemon pid."""
    from dispatcher.cli.api_client import resolve_token
    from sim.live import LiveOptions

    token = resolve_token(settings)
    if token is None:
        print("fleetd sim run: no token ($FLEETD_TOKEN): no missions created", file=sys.stderr)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    folder = args.report or Path(".run") / "reports" / f"{scenario.name}-{stamp}"
    return LiveOptions(
        report_dir=folder,
        token=token,
        api_url=settings.api.base_url,
        daemon_pid=args.daemon_pid,
        progress=not args.no_progress,
        stop_when_done=args.stop_when_done,
    )


async def _live(
    scenario: Scenario,
    settings: Settings,
    options: LiveOptions,
    nodes: Sequence[tuple[str, float, float]],
    places: Sequence[str],
) -> int:
    """The run itself, stopped early by SIGTERM or Ctrl-C; then its record and report."""
    from sim.live import run_live, write_record
    from sim.report import write_report

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    record = await run_live(scenario, settings, options, nodes, stop, places)
    # The raw record first: it is kept even if drawing the report fails.
    folder = options.report_dir
    path = write_record(record, folder)
    write_report(record, folder)
    print(record.notes.get("summary", "missions: none created"), flush=True)
    print(f"[sim] report: {folder} (record: {path.name})", file=sys.stderr)
    return 0
