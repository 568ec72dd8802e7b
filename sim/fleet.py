"""Run a simulated fleet: N virtual robots and M scripted drivers in one process."""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass

import structlog

from dispatcher.config import FacilitySettings, Settings
from geo.layout.model import LifDocument
from sim.driver import DriverSpec, ScriptedDriver
from sim.robot import RobotSpec, VirtualRobot

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class FleetPlan:
    robots: int = 20
    drivers: int = 5
    manufacturer: str = "simbot"
    state_interval_s: float = 1.0
    driver_status_interval_s: float = 2.0
    seed: int = 42
    #: Layout nodes (id, x, y) robots start on, in order; empty: a grid near the origin.
    start_nodes: tuple[tuple[str, float, float], ...] = ()
    #: Chance (0-1) that a driver declines an offer it could take (seeded per driver).
    driver_decline_probability: float = 0.0
    #: Simulated seconds per real second for every vehicle (1: real time).
    time_scale: float = 1.0
    #: Robots start with a battery drawn uniformly from this range (percent). The default
    #: starts some low, so charging shows early (dispatch.charge_below_pct: 25).
    battery_start: tuple[float, float] = (15.0, 100.0)


def start_nodes(doc: LifDocument, map_id: str) -> tuple[tuple[str, float, float], ...]:
    """Where robots start on a layout: chargers first (parked fleets sit on them), then
    the other stations, then every other node of ``map_id``, each group by node id."""
    nodes = [n for n in doc.nodes.values() if n.map_id in (map_id, None)]
    chargers = {i for s in doc.charging_stations() for i in s.interaction_node_ids}
    stations = {i for lay in doc.layouts for s in lay.stations for i in s.interaction_node_ids}
    nodes.sort(key=lambda n: (n.node_id not in chargers, n.node_id not in stations, n.node_id))
    return tuple((n.node_id, n.x, n.y) for n in nodes)


def _start(plan: FleetPlan, i: int, cols: int) -> tuple[str, float, float]:
    if plan.start_nodes:
        return plan.start_nodes[i % len(plan.start_nodes)]
    return "", 20.0 + 15.0 * (i % cols), 20.0 + 15.0 * (i // cols)


def build_fleet(
    settings: Settings, plan: FleetPlan
) -> tuple[list[VirtualRobot], list[ScriptedDriver]]:
    """Place robots on the plan's layout nodes (else on a grid) in the facility's first map,
    and give drivers loops of its places."""
    facility: FacilitySettings = settings.default_facility
    rng = random.Random(plan.seed)
    map_id = facility.maps[0].map_id if facility.maps else "campus"
    cols = max(1, math.ceil(math.sqrt(plan.robots)))
    starts = [_start(plan, i, cols) for i in range(plan.robots)]
    robots = [
        VirtualRobot(
            RobotSpec(
                manufacturer=plan.manufacturer,
                serial=f"r{i + 1:04d}",
                map_id=map_id,
                x=starts[i][1],
                y=starts[i][2],
                last_node_id=starts[i][0],
                theta=rng.uniform(-math.pi, math.pi),
                battery_pct=rng.uniform(*plan.battery_start),
            ),
            host=settings.mqtt.host,
            port=settings.mqtt.port,
            prefix=settings.mqtt.vda_prefix,
            state_interval_s=plan.state_interval_s,
        )
        for i in range(plan.robots)
    ]
    places = [(p.lat, p.lon) for p in facility.places] or [
        (m.origin_lat, m.origin_lon) for m in facility.maps
    ]
    if len(places) < 2:
        lat, lon = places[0] if places else (52.52, 13.405)
        places = [(lat, lon), (lat + 0.002, lon + 0.002)]
    drivers = []
    for i in range(plan.drivers):
        loop = places[:]
        rng.shuffle(loop)
        drivers.append(
            ScriptedDriver(
                DriverSpec(
                    driver_id=f"d{i + 1:03d}",
                    waypoints=loop,
                    seed=plan.seed + i,
                    decline_probability=plan.driver_decline_probability,
                ),
                host=settings.mqtt.host,
                port=settings.mqtt.port,
                prefix=settings.mqtt.driver_prefix,
                status_interval_s=plan.driver_status_interval_s,
            )
        )
    for device in (*robots, *drivers):
        device.time_scale = plan.time_scale
    return robots, drivers


async def run_fleet(settings: Settings, plan: FleetPlan) -> None:
    """Run every simulated vehicle until cancelled."""
    robots, drivers = build_fleet(settings, plan)
    log.info(
        "sim.starting",
        robots=len(robots),
        drivers=len(drivers),
        broker=f"{settings.mqtt.host}:{settings.mqtt.port}",
    )
    async with asyncio.TaskGroup() as tg:
        for r in robots:
            tg.create_task(r.run(), name=f"sim.robot.{r.spec.serial}")
        for d in drivers:
            tg.create_task(d.run(), name=f"sim.driver.{d.spec.driver_id}")
