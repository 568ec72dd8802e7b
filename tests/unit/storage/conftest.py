"""Helpers for the storage unit tests: log capture that survives cached loggers."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
import structlog
from prometheus_client import REGISTRY


@pytest.fixture
def captured_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[ModuleType], list[Any]]]:
    """``capture(module)`` routes ``module.log`` into a list it returns.

    The module's own logger may already be cached with another configuration (the daemon's
    ``configure_logging`` caches on first use, and may filter below some level), so the
    defaults are restored for the test and a fresh logger is swapped in.
    """
    saved = structlog.get_config()
    structlog.reset_defaults()
    try:
        with structlog.testing.capture_logs() as logs:

            def capture(module: ModuleType) -> list[Any]:
                monkeypatch.setattr(module, "log", structlog.get_logger(module.__name__))
                return logs

            yield capture
    finally:
        structlog.configure(**saved)


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    """Current value of a metric sample in the default registry (0 if never set)."""
    value = REGISTRY.get_sample_value(name, labels or {})
    return value or 0.0


async def wait_until(
    predicate: Callable[[], Awaitable[bool] | bool], timeout_s: float = 10
) -> None:
    """Poll ``predicate`` (plain or async) until true; fail the test after ``timeout_s``.

    Polling, because what we wait for happens inside a task we do not want to instrument.
    """
    async with asyncio.timeout(timeout_s):
        while True:
            result = predicate()
            if await result if inspect.isawaitable(result) else result:
                return
            await asyncio.sleep(0.005)
