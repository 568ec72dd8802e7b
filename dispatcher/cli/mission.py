"""``fleetd mission``: create, show, list and cancel missions through the running daemon's API.

Every action is an HTTP call (``dispatcher.cli.api_client``) with the token from
``$FLEETD_TOKEN`` or ``api.token``; errors print as one line and exit with status 1.
Usage errors found after parsing (a bad ``--at``) exit with status 2.

``--pickup`` / ``--dropoff`` take a place name of the facility map (``"Ward A"``) or a
``LAT,LON`` pair. ``--at`` takes an ISO 8601 time or ``HH:MM`` (today, in the facility's
time zone); the requested pickup window is then ``[at, at + --window minutes]``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dispatcher.cli.api_client import ApiClient, run_api_command
from dispatcher.cli.common import settings_from_args
from dispatcher.config import FacilitySettings, Settings

PRIORITIES = ("low", "normal", "high", "urgent")
STATUSES = ("pending", "assigned", "in_progress", "completed", "cancelled", "failed")
DEFAULT_WINDOW_MIN = 15

_LATLON = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$")
_HHMM = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*$")


class UsageError(ValueError):
    """Input the parser could not check (a time in the past, ...): exit status 2."""


# Parsing ---------------------------------------------------------------------------------


def parse_location(text: str) -> dict[str, Any]:
    """``"Ward A"`` -> ``{"place": "Ward A"}``; ``"52.52,13.40"`` -> ``{"lat":.., "lon":..}``."""
    match = _LATLON.match(text)
    if match:
        return {"lat": float(match[1]), "lon": float(match[2])}
    return {"place": text.strip()}


def parse_at(value: str, tz: tzinfo, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (``tz`` when it names no zone) or ``HH:MM`` today in ``tz``.

    Raises :class:`UsageError` for anything else.
    """
    now = now or datetime.now(UTC)
    match = _HHMM.match(value)
    if match:
        today: date = now.astimezone(tz).date()
        naive = datetime(today.year, today.month, today.day, int(match[1]), int(match[2]))
        return naive.replace(tzinfo=tz)
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageError(
            f"--at {value!r}: expected HH:MM (today) or an ISO 8601 time such as "
            "2030-05-01T14:30+02:00"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=tz)


def facility_zone(facility: FacilitySettings | None) -> tzinfo:
    """The facility's time zone (UTC when unknown or not installed)."""
    if facility is None:
        return UTC
    try:
        return ZoneInfo(facility.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def find_facility(settings: Settings, ref: str | None) -> FacilitySettings | None:
    """The configured facility named by key or id; the default one when ``ref`` is None."""
    if ref is None:
        return settings.default_facility
    return next(
        (f for f in settings.effective_facilities if ref in (f.key, str(f.id))),
        None,
    )


def build_create_body(
    args: argparse.Namespace, settings: Settings, *, now: datetime | None = None
) -> dict[str, Any]:
    """The JSON body of ``POST /v1/missions`` for ``fleetd mission create``."""
    body: dict[str, Any] = {
        "pickup": parse_location(args.pickup),
        "dropoff": parse_location(args.dropoff),
        "priority": args.priority,
    }
    if args.facility:
        body["facility"] = args.facility
    if args.kind:
        body["requirements"] = {"vehicle_kind": args.kind}
    if args.notes:
        body["notes"] = args.notes
    if args.at:
        if args.window <= 0:
            raise UsageError("--window must be a positive number of minutes")
        tz = facility_zone(find_facility(settings, args.facility))
        start = parse_at(args.at, tz, now=now)
        end = start + timedelta(minutes=args.window)
        if end <= (now or datetime.now(UTC)):
            raise UsageError(f"--at {args.at!r} is in the past ({start.isoformat()})")
        body["window"] = {"start": start.isoformat(), "end": end.isoformat()}
    return body


# Formatting -----------------------------------------------------------------------------


def _when(value: Any, tz: tzinfo) -> str:
    if not isinstance(value, str):
        return "-"
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return value
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def _where(loc: Any) -> str:
    if not isinstance(loc, Mapping) or loc.get("lat") is None or loc.get("lon") is None:
        return "-"
    point = f"({float(loc['lat']):.5f}, {float(loc['lon']):.5f})"
    return f"{loc['place']} {point}" if loc.get("place") else point


def _requirements(req: Any) -> str:
    if not isinstance(req, Mapping):
        return "-"
    parts = [f"vehicle {req.get('vehicle_kind', 'any')}"]
    if req.get("wheelchair_type"):
        parts.append(f"wheelchair {req['wheelchair_type']}")
    if req.get("payload_kg") is not None:
        parts.append(f"payload {req['payload_kg']:g} kg")
    return ", ".join(parts)


def _details(details: Any) -> str:
    if not isinstance(details, Mapping) or not details:
        return ""
    return " ".join(f"{k}={v}" for k, v in details.items())


def format_mission(doc: Mapping[str, Any], tz: tzinfo = UTC) -> str:
    """A mission (with its ``timeline`` when present) as readable text."""
    window = doc.get("window")
    passenger = doc.get("passenger")
    rows = [
        ("facility", str(doc.get("facility_id", "-"))),
        ("pickup", _where(doc.get("pickup"))),
        ("dropoff", _where(doc.get("dropoff"))),
        (
            "window",
            f"{_when(window.get('start'), tz)} .. {_when(window.get('end'), tz)}"
            if isinstance(window, Mapping)
            else "-",
        ),
        ("requirements", _requirements(doc.get("requirements"))),
        (
            "passenger",
            f"{passenger.get('ref')}"
            + (f" ({passenger['display_name']})" if passenger.get("display_name") else "")
            if isinstance(passenger, Mapping)
            else "-",
        ),
        ("vehicle", str(doc.get("vehicle_id") or "-")),
        ("created", f"{_when(doc.get('created_at'), tz)} by {doc.get('created_by', '-')}"),
        ("updated", f"{_when(doc.get('updated_at'), tz)} (version {doc.get('version', '?')})"),
    ]
    if doc.get("notes"):
        rows.append(("notes", str(doc["notes"])))
    lines = [f"mission {doc.get('id')}  {doc.get('status')}  priority {doc.get('priority')}"]
    lines += [f"  {label:<13}{value}" for label, value in rows]
    timeline = doc.get("timeline")
    if isinstance(timeline, list):
        lines += ["", "timeline"]
        for ev in timeline:
            status = (
                f"{ev.get('from_status')} -> {ev.get('to_status')}"
                if ev.get("from_status") and ev.get("from_status") != ev.get("to_status")
                else str(ev.get("to_status"))
            )
            extra = _details(ev.get("details"))
            vehicle = f" vehicle {ev['vehicle_id']}" if ev.get("vehicle_id") else ""
            lines.append(
                f"  {_when(ev.get('at'), tz)}  {ev.get('event', '?'):<18} {status:<24}"
                f" by {ev.get('actor') or '-'}{vehicle}" + (f"  {extra}" if extra else "")
            )
    return "\n".join(lines)


def format_row(doc: Mapping[str, Any], tz: tzinfo = UTC) -> str:
    """One line per mission for ``fleetd mission list``."""
    pickup = doc.get("pickup") or {}
    dropoff = doc.get("dropoff") or {}
    return (
        f"{doc.get('id')}  {doc.get('status', '?'):<11} {doc.get('priority', '?'):<7} "
        f"{_when(doc.get('created_at'), tz)}  "
        f"{pickup.get('place') or _where(pickup)} -> {dropoff.get('place') or _where(dropoff)}"
    )


# Commands -------------------------------------------------------------------------------


def create_with(client: ApiClient, args: argparse.Namespace, settings: Settings) -> int:
    """``mission create`` against ``client``; prints the mission id as the last word."""
    try:
        body = build_create_body(args, settings)
    except UsageError as exc:
        print(f"fleetd mission create: {exc}", file=sys.stderr)
        return 2
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    mission = client.post("/v1/missions", json=body, headers=headers)
    print(f"created {mission['status']} {mission['priority']} mission {mission['id']}")
    return 0


def show_with(client: ApiClient, args: argparse.Namespace, settings: Settings) -> int:
    """``mission show``: the mission and its timeline (or the JSON document)."""
    doc = client.get(f"/v1/missions/{args.mission_id}")
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    facility = next(
        (f for f in settings.effective_facilities if str(f.id) == doc.get("facility_id")), None
    )
    print(format_mission(doc, facility_zone(facility)))
    return 0


def list_with(client: ApiClient, args: argparse.Namespace, settings: Settings) -> int:
    """``mission list``: one line per mission, newest first."""
    params: dict[str, Any] = {"limit": args.limit}
    if args.status:
        params["status"] = args.status
    page = client.get("/v1/missions", **params)
    items = page.get("items", [])
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    tz = facility_zone(settings.default_facility)
    for doc in items:
        print(format_row(doc, tz))
    if page.get("next_cursor"):
        print(f"(more than {args.limit}; raise --limit to see more)")
    return 0


def cancel_with(client: ApiClient, args: argparse.Namespace, settings: Settings) -> int:
    """``mission cancel``: prints the mission's new status."""
    body = {"reason": args.reason} if args.reason else None
    mission = client.post(f"/v1/missions/{args.mission_id}/cancel", json=body)
    print(f"mission {mission['id']} is {mission['status']}")
    return 0


Action = Callable[[ApiClient, argparse.Namespace, Settings], int]


def _runner(action: Action) -> Callable[[argparse.Namespace], int]:
    """The ``func`` of a subcommand: load settings, then run ``action`` with a client."""

    def run(args: argparse.Namespace) -> int:
        settings = settings_from_args(args)
        return run_api_command(settings, lambda client: action(client, args, settings))

    return run


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``mission create | show | list | cancel``."""
    parser = subparsers.add_parser(
        "mission",
        help="create, show, list and cancel missions (through the running daemon)",
        description="Missions through the daemon's API; the token comes from FLEETD_TOKEN "
        "or api.token in the configuration.",
    )
    sub = parser.add_subparsers(dest="mission_command", metavar="ACTION", required=True)

    create = sub.add_parser(
        "create",
        help="request a transport; prints the mission id last",
        description="Create a mission. PLACE is a place name of the facility map or LAT,LON.",
    )
    create.add_argument("--pickup", required=True, metavar="PLACE")
    create.add_argument("--dropoff", required=True, metavar="PLACE")
    create.add_argument("--priority", choices=PRIORITIES, default="normal")
    create.add_argument(
        "--at",
        metavar="TIME",
        help="requested pickup time: HH:MM (today, facility time) or ISO 8601",
    )
    create.add_argument(
        "--window",
        type=int,
        default=DEFAULT_WINDOW_MIN,
        metavar="MIN",
        help=f"length of the pickup window after --at, minutes (default {DEFAULT_WINDOW_MIN})",
    )
    create.add_argument("--kind", choices=("robot", "driver", "any"), help="vehicle kind")
    create.add_argument("--notes", help="free text for the crew (at most 2000 characters)")
    create.add_argument("--facility", metavar="KEY_OR_ID", help="default: the token's facility")
    create.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="retrying with the same key returns the same mission instead of a new one",
    )
    create.set_defaults(func=_runner(create_with))

    show = sub.add_parser("show", help="print a mission and its timeline")
    show.add_argument("mission_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="print the JSON document")
    show.set_defaults(func=_runner(show_with))

    lst = sub.add_parser("list", help="list missions, newest first")
    lst.add_argument("--status", choices=STATUSES, action="append", help="repeatable")
    lst.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(func=_runner(list_with))

    cancel = sub.add_parser("cancel", help="cancel a mission that has not finished")
    cancel.add_argument("mission_id", metavar="ID")
    cancel.add_argument("--reason", help="why (kept in the timeline and the audit log)")
    cancel.set_defaults(func=_runner(cancel_with))
