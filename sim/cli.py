"""``fleetd sim``: simulated fleets against the broker and the daemon in the configuration.

``fleetd sim run SCENARIO`` runs a scenario (:mod:`sim.run_cli`). Each ``fleetd sim``
subcommand is a module with a ``register(subparsers)`` function listed in
:data:`SIM_COMMANDS`: adding one is adding its module name there.

``fleetd sim --robots N --drivers M ...`` (no subcommand) is the older, simpler form: a
fleet in one process (one aiomqtt connection per vehicle) and, if asked, a Poisson
workload, until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import signal
import sys
from typing import TYPE_CHECKING

import httpx

from dispatcher.cli.common import config_dir_from_args, settings_from_args
from dispatcher.logs import configure_logging

if TYPE_CHECKING:
    from dispatcher.config import Settings
    from sim.fleet import FleetPlan


#: ``fleetd sim`` subcommand modules, each with ``register(subparsers)``.
SIM_COMMANDS: tuple[str, ...] = ("sim.run_cli", "sim.evaluate_cli", "sim.compare_cli")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sim",
        help="simulated fleets: scenarios (sim run), or robots and driver phones by flags",
        description="Run a scenario (fleetd sim run SCENARIO), or, without a subcommand, "
        "a simulated fleet given by the flags below until SIGTERM or Ctrl-C.",
    )
    sim_sub = p.add_subparsers(dest="sim_command", metavar="SIM_COMMAND")
    for name in SIM_COMMANDS:
        importlib.import_module(name).register(sim_sub)
    p.add_argument("--robots", type=int, default=20, help="virtual robots (default 20)")
    p.add_argument("--drivers", type=int, default=5, help="scripted driver devices (default 5)")
    p.add_argument("--state-interval", type=float, default=1.0, help="robot state period, s")
    p.add_argument("--seed", type=int, default=42, help="random seed for placement")
    p.add_argument("--manufacturer", default="simbot", help="VDA 5050 manufacturer of the robots")
    p.add_argument(
        "--driver-decline",
        type=float,
        default=0.0,
        help="chance (0-1) that a driver declines an offer it could take (default 0)",
    )
    p.add_argument(
        "--missions-per-minute",
        type=float,
        default=0.0,
        help="create missions through the control API at this mean rate (Poisson; needs a "
        "token in $FLEETD_TOKEN or api.token; default 0: none)",
    )
    p.add_argument(
        "--battery-start",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=(15.0, 100.0),
        help="robots start with a battery drawn from LOW-HIGH percent (default 15 100: "
        "some start low, so charging shows early)",
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="simulated seconds per real second for every vehicle: travel, actions, "
        "charging and battery (a demo's time-lapse; default 1: real time)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dispatcher.facility_layouts import load_facility
    from geo.layout.errors import LayoutError
    from sim.fleet import FleetPlan, start_nodes

    if args.robots < 0 or args.drivers < 0 or args.state_interval <= 0:
        print("fleetd sim: --robots and --drivers must be >= 0 and --state-interval > 0")
        return 2
    if not 0.0 <= args.driver_decline <= 1.0:
        print("fleetd sim: --driver-decline must be between 0 and 1")
        return 2
    low, high = args.battery_start
    if not 0.0 <= low <= high <= 100.0:
        print("fleetd sim: --battery-start must be LOW HIGH with 0 <= LOW <= HIGH <= 100")
        return 2
    if not 0.0 < args.time_scale <= 100.0:
        print("fleetd sim: --time-scale must be above 0 and at most 100")
        return 2
    if not 0.0 <= args.missions_per_minute <= 6000:
        print("fleetd sim: --missions-per-minute must be between 0 and 6000")
        return 2
    settings = settings_from_args(args)
    configure_logging(settings.daemon.log_level, settings.daemon.log_format)
    facility = settings.default_facility
    nodes: tuple[tuple[str, float, float], ...] = ()
    if facility.layouts and facility.maps:
        try:
            # Read before the event loop starts: robots begin on the layout's nodes.
            loaded = load_facility(facility, config_dir_from_args(args))
        except LayoutError as exc:
            print(f"fleetd sim: invalid layout: {exc.describe()}", file=sys.stderr)
            return 2
        nodes = start_nodes(loaded.documents[0], facility.maps[0].map_id)
    plan = FleetPlan(
        robots=args.robots,
        drivers=args.drivers,
        manufacturer=args.manufacturer,
        state_interval_s=args.state_interval,
        seed=args.seed,
        start_nodes=nodes,
        driver_decline_probability=args.driver_decline,
        time_scale=args.time_scale,
        battery_start=(low, high),
    )

    async def main() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        assert task is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await _fleet_and_workload(settings, plan, args.missions_per_minute, args.seed)

    asyncio.run(main())
    return 0


async def _fleet_and_workload(
    settings: Settings, plan: FleetPlan, per_minute: float, seed: int
) -> None:
    """Run the fleet and, when asked, a mission workload; on the way out print its summary."""
    from dispatcher.cli.api_client import resolve_token
    from sim.fleet import run_fleet
    from sim.workload import WorkloadLog, WorkloadPlan, fetch_missions, run_workload, summarise

    token = resolve_token(settings)
    if per_minute <= 0 or token is None:
        if per_minute > 0:
            print("fleetd sim: no token ($FLEETD_TOKEN): no missions created", file=sys.stderr)
        await run_fleet(settings, plan)
        return
    facility = settings.default_facility
    workload = WorkloadPlan(
        per_minute=per_minute,
        places=tuple(p.name for p in facility.places),
        seed=seed,
        facility=facility.key,
    )
    record = WorkloadLog()
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=settings.api.base_url, headers=headers, timeout=10.0
    ) as client:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(run_fleet(settings, plan), name="sim.fleet")
                tg.create_task(run_workload(client, workload, record), name="sim.workload")
        finally:
            # Cancelled (SIGTERM, Ctrl-C): still say what became of the missions, briefly.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    missions = await fetch_missions(client, record.created)
                    print(summarise(missions).line(), flush=True)
