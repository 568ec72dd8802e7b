"""``fleetd run``: the daemon in the foreground (systemd runs exactly this)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from dispatcher.cli.common import config_dir_from_args, settings_from_args
from dispatcher.config import Settings, load_settings
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
    from dispatcher.facility_layouts import load_facility_layouts
    from geo.layout.errors import LayoutError

    try:
        # A bad layout stops fleetd before it connects anywhere, like a bad setting.
        layouts = load_facility_layouts(settings.effective_facilities, config_dir_from_args(args))
    except LayoutError as exc:
        print(f"fleetd: invalid layout: {exc.describe()}", file=sys.stderr)
        for other in exc.also:
            print(f"  also: {other.describe()}", file=sys.stderr)
        return 2
    from dispatcher.daemon import Daemon

    run: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    try:
        # uvloop cuts the event loop's cost per MQTT message (MEASURED.md).
        import uvloop

        run = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    try:
        # SIGHUP reads the same file (and environment) again.
        def reload_settings() -> Settings:
            return load_settings(getattr(args, "config", None))

        run(Daemon(settings, layouts=layouts, reload_settings=reload_settings).run())
    except StorageError as exc:
        print(f"fleetd: {exc}", file=sys.stderr)
        return 1
    return 0
