"""``fleetd sim run SCENARIO``: a scenario's live run against the configured fleetd."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from dispatcher.cli.common import config_dir_from_args, settings_from_args
from dispatcher.logs import configure_logging
from sim.scenario import FaultRates, ScenarioError, load_scenario


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


def _run(args: argparse.Namespace) -> int:
    from dispatcher.cli.api_client import resolve_token
    from dispatcher.facility_layouts import load_facility
    from geo.layout.errors import LayoutError
    from sim.fleet import start_nodes
    from sim.live import (
        LiveOptions,
        live_places,
        run_live,
        write_record,
    )
    from sim.report import write_report
    from sim.workload_draw import WorkloadError, draw_workload

    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"fleetd sim run: {exc}", file=sys.stderr)
        return 2
    update: dict[str, object] = {}
    if args.seed is not None:
        update["seed"] = args.seed
    if args.duration is not None:
        if args.duration <= 0:
            print("fleetd sim run: --duration must be above 0", file=sys.stderr)
            return 2
        update["duration_s"] = args.duration
    if args.time_scale is not None:
        if not 0.0 < args.time_scale <= 1000.0:
            print("fleetd sim run: --time-scale must be above 0, at most 1000", file=sys.stderr)
            return 2
        update["time_scale"] = args.time_scale
    rates = {k: getattr(args, f"fault_{k}") for k in FaultRates.model_fields}
    rates = {k: v for k, v in rates.items() if v is not None}
    if rates:
        update["faults"] = scenario.faults.model_copy(update=rates)
    scenario = scenario.model_copy(update=update)

    settings = settings_from_args(args)
    configure_logging(settings.daemon.log_level, settings.daemon.log_format)
    facility = next((f for f in settings.effective_facilities if f.key == scenario.facility), None)
    if facility is None:
        print(f"fleetd sim run: no facility {scenario.facility!r} configured", file=sys.stderr)
        return 2
    nodes: tuple[tuple[str, float, float], ...] = ()
    loaded = None
    if facility.layouts and facility.maps:
        try:
            loaded = load_facility(facility, config_dir_from_args(args))
        except LayoutError as exc:
            print(f"fleetd sim run: invalid layout: {exc.describe()}", file=sys.stderr)
            return 2
        nodes = start_nodes(loaded.documents[0], facility.maps[0].map_id)
    # The places the offline evaluation uses: the same seed, the same missions.
    places = live_places(settings, facility, loaded)
    try:
        draw_workload(scenario, places)  # refused here, before anything starts
    except WorkloadError as exc:
        print(f"fleetd sim run: {exc}", file=sys.stderr)
        return 2
    token = resolve_token(settings)
    if token is None:
        print("fleetd sim run: no token ($FLEETD_TOKEN): no missions created", file=sys.stderr)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    folder = args.report or Path(".run") / "reports" / f"{scenario.name}-{stamp}"
    options = LiveOptions(
        report_dir=folder,
        token=token,
        api_url=settings.api.base_url,
        daemon_pid=args.daemon_pid,
        progress=not args.no_progress,
        stop_when_done=args.stop_when_done,
    )

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        record = await run_live(scenario, settings, options, nodes, stop, places)
        # The raw record first: it is kept even if drawing the report fails.
        path = write_record(record, folder)
        write_report(record, folder)
        print(record.notes.get("summary", "missions: none created"), flush=True)
        print(f"[sim] report: {folder} (record: {path.name})", file=sys.stderr)
        return 0

    return asyncio.run(main())
