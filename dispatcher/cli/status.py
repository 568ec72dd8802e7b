"""``fleetd status``: the live fleet (and missions) as read from the running daemon.

On a terminal it starts the live view (:mod:`dispatcher.console`, Textual: vehicles,
missions, alerts, details, map; fed by the event stream). ``--once``, ``--json``, and any
run whose stdout is not a terminal (a pipe, CI) or with ``--plain`` print the plain table:

Reads ``GET /v1/vehicles`` (every page) and ``GET /v1/missions`` (when the daemon serves
it and the token may read it; else the list is empty). ``--json`` prints one document
``{"vehicles": [...], "missions": [...], "as_of": ISO}``; otherwise an aligned table,
refreshed every ``--interval`` seconds until Ctrl-C (``--once`` prints it once).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from dispatcher.cli.api_client import (
    ApiClient,
    ApiError,
    DaemonUnreachable,
    quiet_logging,
    resolve_token,
    run_api_command,
)
from dispatcher.cli.common import settings_from_args
from dispatcher.config import Settings

#: Mission pages read per refresh at most (1000 missions a page).
MAX_MISSION_PAGES = 10
FINAL_MISSION_STATES = frozenset({"completed", "cancelled", "failed"})
MAX_MISSION_ROWS = 30
#: Widest cell printed; longer text (a name a vehicle chose) is cut with an ellipsis.
MAX_CELL = 64


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``status`` subcommand."""
    parser = subparsers.add_parser(
        "status",
        help="show the live fleet and missions of the running daemon",
        description=(
            "Read vehicles and missions from the running daemon's API (token from "
            "FLEETD_TOKEN or api.token) and print them as a table, refreshed until Ctrl-C."
        ),
    )
    parser.add_argument("--once", action="store_true", help="print once and exit")
    parser.add_argument("--json", action="store_true", help="print JSON (implies --once)")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="reprint the plain table every --interval seconds instead of the live view",
    )
    parser.add_argument(
        "--for",
        dest="run_for",
        type=float,
        default=0.0,
        metavar="S",
        help="live view: quit by itself after S seconds (default 0: when you press q)",
    )
    parser.add_argument(
        "--facility",
        default=None,
        metavar="KEY",
        help="facility whose map the live view draws (default: the token's, or the first)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds between refreshes (default 2)",
    )
    parser.set_defaults(func=_run)


def fetch_status(client: ApiClient) -> dict[str, Any]:
    """``{"vehicles", "missions", "as_of"}`` from the daemon; missions [] when unavailable."""
    vehicles = list(client.iter_pages("/v1/vehicles", limit=1000))
    missions: list[Any] = []
    try:
        missions = list(client.iter_pages("/v1/missions", limit=1000, max_pages=MAX_MISSION_PAGES))
    except DaemonUnreachable:
        raise
    except ApiError:
        missions = []  # not served yet, or this token may not read missions
    return {
        "vehicles": vehicles,
        "missions": missions,
        "as_of": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _cell(value: Any, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)


def printable(text: str, limit: int = MAX_CELL) -> str:
    """``text`` safe for a terminal: control and format characters (escape sequences,
    bidi overrides) shown as ``\\xNN``/``\\uNNNN``, cut to ``limit`` characters.

    Names and serials come from vehicles; printed raw, ``ESC[2J`` or an OSC sequence
    would act on the operator's terminal instead of being shown.
    """
    out = []
    for ch in text:
        if unicodedata.category(ch)[0] in "CZ" and ch != " ":
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    safe = "".join(out)
    return safe if len(safe) <= limit else safe[: limit - 1] + "…"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def render_table(status: Mapping[str, Any], *, now: datetime | None = None) -> str:
    """The human view: vehicles, then active missions."""
    now = now or datetime.now(UTC)
    vehicles = sorted(status["vehicles"], key=lambda v: (str(v.get("name")), str(v.get("id"))))
    rows = []
    for v in vehicles:
        seen = _parse_time(v.get("last_seen"))
        age = f"{(now - seen).total_seconds():.1f}" if seen else "-"
        lat, lon = v.get("lat"), v.get("lon")
        pos = f"{lat:.6f},{lon:.6f}" if lat is not None and lon is not None else "-"
        mission = v.get("mission_id")
        rows.append(
            [
                str(v.get("name", "?")),
                str(v.get("kind", "?")),
                "yes" if v.get("online") else "no",
                str(v.get("status", "?")),
                _cell(v.get("battery"), "{:.0f}"),
                age,
                pos,
                str(mission)[:8] if mission else "-",
            ]
        )
    online = sum(1 for v in vehicles if v.get("online"))
    out = [f"fleetd status  {status['as_of']}  vehicles {len(vehicles)} ({online} online)", ""]
    header = ["VEHICLE", "KIND", "ONLINE", "STATUS", "BATT%", "AGE_S", "LAT,LON", "MISSION"]
    out += _table(header, rows, right={4, 5})
    active = [m for m in status["missions"] if m.get("status") not in FINAL_MISSION_STATES]
    out += ["", f"missions: {len(active)} active"]
    if active:
        mrows = [
            [
                str(m.get("id", "?"))[:8],
                str(m.get("status", "?")),
                str(m.get("priority", "?")),
                str(m.get("vehicle_id"))[:8] if m.get("vehicle_id") else "-",
                _place(m.get("pickup")),
                _place(m.get("dropoff")),
                str(m.get("created_at", "-"))[:19],
            ]
            for m in active[:MAX_MISSION_ROWS]
        ]
        header = ["MISSION", "STATUS", "PRIORITY", "VEHICLE", "PICKUP", "DROPOFF", "CREATED"]
        out += _table(header, mrows, right=set())
        if len(active) > MAX_MISSION_ROWS:
            out.append(f"... and {len(active) - MAX_MISSION_ROWS} more")
    return "\n".join(out)


def _place(loc: Any) -> str:
    if isinstance(loc, Mapping):
        if loc.get("place"):
            return str(loc["place"])
        if loc.get("lat") is not None:
            return f"{loc['lat']:.5f},{loc.get('lon', 0):.5f}"
    return "-"


def _run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    quiet_logging()
    if args.interval <= 0:
        print("fleetd status: --interval must be positive", file=sys.stderr)
        return 2

    def body(client: ApiClient) -> int:
        if args.json:
            print(json.dumps(fetch_status(client), indent=2))
            return 0
        if args.once:
            print(render_table(fetch_status(client)))
            return 0
        interactive = sys.stdout.isatty()
        if interactive and not args.plain:
            return _live_view(settings, args.facility, args.run_for)
        try:
            while True:
                text = render_table(fetch_status(client))
                if interactive:
                    sys.stdout.write("\x1b[H\x1b[2J")
                print(text, flush=True)
                time.sleep(args.interval)
        except KeyboardInterrupt:
            return 0

    return run_api_command(settings, body, prog="fleetd")


def _live_view(settings: Settings, facility: str | None, run_for: float) -> int:
    """Run the Textual view until the user quits (q or Ctrl-C), or for ``run_for`` s."""
    from dispatcher.console.app import StatusApp
    from dispatcher.console.client import DaemonClient

    quiet_logging(logging.CRITICAL)  # a log line would scribble over the full-screen view
    client = DaemonClient(settings.api.base_url, resolve_token(settings))
    StatusApp(client, facility=facility, run_for_s=run_for or None).run()
    return 0
