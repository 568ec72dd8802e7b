"""The supervisor's shutdown phases each keep to the grace period, and go on past it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import pytest
import structlog
import uvicorn

from dispatcher import daemon as daemon_module
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


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """What the daemon module logs. Its logger may be cached with another configuration
    (the daemon's ``configure_logging`` caches on first use), so a fresh one is swapped in."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    try:
        with structlog.testing.capture_logs() as captured:
            monkeypatch.setattr(daemon_module, "log", structlog.get_logger(daemon_module.__name__))
            yield captured
    finally:
        structlog.configure(**saved)


class TestStopIntake:
    async def test_intake_that_does_not_stop_in_time_is_cancelled(self) -> None:
        """A request stuck past the grace period must not keep the daemon up."""
        server = SimpleNamespace(should_exit=False, force_exit=False)
        stuck = asyncio.create_task(_forever(), name="fleetd.api")
        await daemon(0.01)._stop_intake([stuck], cast(uvicorn.Server, server), [])
        assert stuck.cancelled()
        assert server.should_exit and server.force_exit

    async def test_intake_that_swallows_its_cancellation_does_not_hold_shutdown(
        self, logs: list[Any]
    ) -> None:
        """A request stuck past the grace period, whose handler ignores the cancellation
        once: waited for one more grace period only, named, and cancelled again. (A gather
        cancelled by the phase's timeout waited for it for ever.)"""
        server = SimpleNamespace(should_exit=False, force_exit=False)

        async def stubborn() -> None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
            await asyncio.Event().wait()  # until cancelled a second time

        task = asyncio.create_task(stubborn(), name="fleetd.api")
        await asyncio.sleep(0)  # running: a task cancelled before its first step never runs
        async with asyncio.timeout(5):
            await daemon(0.05)._stop_intake([task], cast(uvicorn.Server, server), [])
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert task.cancelled() and server.force_exit
        named = [(e["log_level"], e["tasks"]) for e in logs if e.get("tasks")]
        assert named == [("error", ["fleetd.api"])]

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


class TestStopWorkers:
    async def test_a_worker_that_swallows_its_cancellation_does_not_hold_shutdown(
        self, logs: list[Any]
    ) -> None:
        """Past the grace period the workers still running are named in an error, cancelled
        once more, and shutdown goes on to drain (CI: a daemon not stopped within 30 s)."""
        drained: list[str] = []

        async def stubborn() -> None:
            d.stop()  # once running: a task cancelled before its first step never runs
            # The bug this guards against: the first cancellation swallowed.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
            await asyncio.Event().wait()

        async def drain() -> None:
            drained.append("flushed")

        d = daemon(0.05)
        server = SimpleNamespace(should_exit=False, force_exit=False)
        await asyncio.wait_for(
            d._supervise(
                intake=[],
                workers=[("fleetd.stubborn", stubborn), ("fleetd.polite", _forever)],
                drain=[drain],
                server=cast(uvicorn.Server, server),
                before_exit=[],
            ),
            timeout=5,
        )
        assert drained == ["flushed"]
        timeouts = [e for e in logs if e["event"] == "daemon.workers_stop_timeout"]
        assert [(e["log_level"], e["tasks"]) for e in timeouts] == [("error", ["fleetd.stubborn"])]
