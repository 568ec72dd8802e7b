"""Run a simulated fleet: N virtual robots and M scripted drivers in one process."""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass

import structlog

from dispatcher.config import FacilitySettings, Settings
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


def build_fleet(
    settings: Settings, plan: FleetPlan
) -> tuple[list[VirtualRobot], list[ScriptedDriver]]:
    """Place robots on a grid in the facility's first map and give drivers loops of its places."""
    facility: FacilitySettings = settings.default_facility
    rng = random.Random(plan.seed)
    map_id = facility.maps[0].map_id if facility.maps else "campus"
    cols = max(1, math.ceil(math.sqrt(plan.robots)))
    robots = [
        VirtualRobot(
            RobotSpec(
                manufacturer=plan.manufacturer,
                serial=f"r{i + 1:04d}",
                map_id=map_id,
                x=20.0 + 15.0 * (i % cols),
                y=20.0 + 15.0 * (i // cols),
                theta=rng.uniform(-math.pi, math.pi),
                battery_pct=rng.uniform(40.0, 100.0),
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
                DriverSpec(driver_id=f"d{i + 1:03d}", waypoints=loop, seed=plan.seed + i),
                host=settings.mqtt.host,
                port=settings.mqtt.port,
                prefix=settings.mqtt.driver_prefix,
                status_interval_s=plan.driver_status_interval_s,
            )
        )
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
