"""The supervisor's shutdown phases each keep to the grace period, and go on past it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import uvicorn

from dispatcher.daemon import Daemon
from tests.conftest import daemon_settings


def daemon(grace_s: float) -> Daemon:
    settings = daemon_settings(
        "postgresql://127.0.0.1:1/none", "ns", "p:", daemon={"shutdown_grace_s": grace_s}
    )
    return Daemon(settings, install_signal_handlers=False)


async def _forever() -> None:
    """A task that never ends by itself (the daemon's intake tasks return None)."""
    await asyncio.Event().wait()


class TestStopIntake:
    async def test_intake_that_does_not_stop_in_time_is_cancelled(self) -> None:
        """A request stuck past the grace period must not keep the daemon up."""
        server = SimpleNamespace(should_exit=False, force_exit=False)
        stuck = asyncio.create_task(_forever(), name="fleetd.api")
        await daemon(0.01)._stop_intake([stuck], cast(uvicorn.Server, server), [])
        assert stuck.cancelled()
        assert server.should_exit and server.force_exit

    async def test_intake_that_stops_in_time_is_left_to_finish(self) -> None:
        server = SimpleNamespace(should_exit=False, force_exit=False)
        hooks: list[str] = []

        async def serve() -> None:
            while not server.should_exit:  # noqa: ASYNC110 - uvicorn polls the same way
                await asyncio.sleep(0)

        async def before_exit() -> Any:
            hooks.append("closed streams")

        api = asyncio.create_task(serve(), name="fleetd.api")
        mqtt = asyncio.create_task(_forever(), name="fleetd.mqtt")
        await daemon(30)._stop_intake([mqtt, api], cast(uvicorn.Server, server), [before_exit])
        assert hooks == ["closed streams"]
        assert api.done() and not api.cancelled()
        assert mqtt.cancelled()  # the MQTT session is closed by cancelling its task
        assert not server.force_exit


class TestDrain:
    async def test_a_drain_past_the_grace_period_is_abandoned(self) -> None:
        done: list[str] = []

        async def slow() -> None:
            await asyncio.Event().wait()

        async def never_reached() -> None:
            done.append("late")

        await daemon(0.01)._drain([slow, never_reached])
        assert done == []
