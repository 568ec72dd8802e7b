"""One virtual robot in a process of its own, for tests that kill it (``SIGKILL``).

A killed process sends no MQTT DISCONNECT: the broker publishes the robot's Last Will
(``CONNECTIONBROKEN``, retained), as for a real robot that loses power. Run as
``python -m tests.integration.dispatch.robot_process '<json>'`` with ``host``, ``port``,
``prefix`` and ``spec`` (the :class:`sim.robot.RobotSpec` fields); prints ``ready`` once
its session is up.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from sim.robot import RobotSpec, VirtualRobot


async def main(args: dict[str, Any]) -> None:
    robot = VirtualRobot(
        RobotSpec(**args["spec"]),
        host=args.get("host", "127.0.0.1"),
        port=int(args.get("port", 1883)),
        prefix=args["prefix"],
        state_interval_s=0.2,
        tick_s=0.05,
    )
    task = asyncio.create_task(robot.run(), name="robot")
    await robot.connected.wait()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await task


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
