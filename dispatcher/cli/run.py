"""``fleetd run``: the daemon in the foreground (systemd runs exactly this)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from dispatcher.cli.common import settings_from_args
from dispatcher.logs import configure_logging
from dispatcher.storage.errors import StorageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        help="run the daemon (MQTT links, live fleet state, control API)",
        description="Run fleetd in the foreground until SIGTERM or Ctrl-C.",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    configure_logging(settings.daemon.log_level, settings.daemon.log_format)
    from dispatcher.daemon import Daemon

    run: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    try:
        # uvloop cuts the event loop's cost per MQTT message (MEASURED.md).
        import uvloop

        run = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    try:
        run(Daemon(settings).run())
    except StorageError as exc:
        print(f"fleetd: {exc}", file=sys.stderr)
        return 1
    return 0
