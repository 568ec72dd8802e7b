"""Save an SVG screenshot of the live status view (``fleetd status``) of a running daemon.

    FLEETD_TOKEN=... .venv/bin/python scripts/status_screenshot.py \\
        --out docs/images/status-view.svg --size 140x42 --wait 8

The view runs headless (Textual's ``run_test``) against the daemon that fleetd's settings
name (``api.base_url``; token from ``$FLEETD_TOKEN`` or ``api.token``), waits ``--wait``
seconds for the snapshot and some events, selects the first vehicle so the details pane
shows, and writes the SVG. Run it while ``scripts/demo.sh`` runs to get the README's image.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from textual.widgets import DataTable

from dispatcher.cli.api_client import quiet_logging, resolve_token
from dispatcher.config import load_settings
from dispatcher.console.app import StatusApp
from dispatcher.console.client import DaemonClient


async def shoot(
    base_url: str, token: str | None, out: Path, size: tuple[int, int], wait: float
) -> int:
    app = StatusApp(DaemonClient(base_url, token))
    async with app.run_test(size=size) as pilot:
        await asyncio.sleep(wait)
        if app.state.stale:
            sys.stderr.write(f"status_screenshot: no live data from {base_url}\n")
            return 1
        table = app.query_one("#vehicles", DataTable)
        table.focus()
        await pilot.press("down", "enter")
        await pilot.pause(0.5)
        out.parent.mkdir(parents=True, exist_ok=True)
        app.save_screenshot(filename=out.name, path=str(out.parent))
    sys.stdout.write(f"wrote {out}\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images/status-view.svg"))
    parser.add_argument("--size", default="140x42", help="COLUMNSxROWS (default 140x42)")
    parser.add_argument("--wait", type=float, default=8.0, help="seconds of data first")
    args = parser.parse_args()
    cols, _, rows = args.size.partition("x")
    quiet_logging()
    settings = load_settings()
    return asyncio.run(
        shoot(
            settings.api.base_url,
            resolve_token(settings),
            args.out,
            (int(cols), int(rows)),
            args.wait,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
