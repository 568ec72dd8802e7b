"""``fleetd layout check|draw``: validate a VDA LIF file, or draw it as a PNG."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dispatcher.cli.common import settings_from_args
from dispatcher.facility_layouts import resolve
from geo.layout.errors import LayoutError
from geo.layout.loader import load_lif
from geo.layout.model import LifDocument


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "layout",
        help="check or draw a facility layout (VDA LIF 1.0)",
        description="Validate a LIF file (schema and graph sanity), or draw it.",
    )
    lsub = p.add_subparsers(dest="layout_command", metavar="ACTION", required=True)
    check = lsub.add_parser("check", help="validate a LIF file; exit 2 naming each problem")
    check.add_argument("file", help="LIF JSON file ('fleetd:NAME' for a shipped one)")
    check.set_defaults(func=_check)
    draw = lsub.add_parser("draw", help="draw a LIF file as a PNG")
    draw.add_argument("file", help="LIF JSON file ('fleetd:NAME' for a shipped one)")
    draw.add_argument("-o", "--output", required=True, metavar="PNG")
    draw.add_argument(
        "--site",
        metavar="FILE",
        help="buildings and zones (.site.json); default: the one beside FILE",
    )
    draw.add_argument(
        "--facility",
        metavar="KEY",
        help="label the places of this configured facility (default: stations)",
    )
    draw.set_defaults(func=_draw)


def _load(ref: str) -> LifDocument:
    return load_lif(resolve(ref, Path.cwd()))


def _report(exc: LayoutError) -> int:
    print(f"fleetd: invalid layout: {exc.describe()}", file=sys.stderr)
    for other in exc.also:
        print(f"  also: {other.describe()}", file=sys.stderr)
    return 2


def _check(args: argparse.Namespace) -> int:
    try:
        doc = _load(args.file)
    except LayoutError as exc:
        return _report(exc)
    for lay in doc.layouts:
        chargers = sum(1 for s in lay.stations if s.charging)
        print(
            f"layout {lay.layout_id!r} version {lay.version}: {len(lay.nodes)} nodes, "
            f"{len(lay.edges)} edges, {len(lay.stations)} stations ({chargers} charging)"
        )
    print(f"vehicle types: {', '.join(sorted(doc.vehicle_types())) or '(none)'}")
    print("ok")
    return 0


def _site_beside(lif_path: Path) -> Path | None:
    name = lif_path.name.removesuffix(".json").removesuffix(".lif")
    candidate = lif_path.with_name(f"{name}.site.json")
    return candidate if candidate.exists() else None


def _draw(args: argparse.Namespace) -> int:
    from geo.layout.draw import draw_layout
    from geo.layout.site import load_site

    path = resolve(args.file, Path.cwd())
    places = None
    if args.facility:
        found = [f for f in settings_from_args(args).effective_facilities if f.key == args.facility]
        if not found:
            print(f"fleetd: no facility {args.facility!r} in the configuration", file=sys.stderr)
            return 2
        facility = found[0]
        places = {p.node_id: p.name for p in facility.places if p.node_id is not None}
    try:
        doc = load_lif(path)
        site_path = Path(args.site) if args.site else _site_beside(path)
        site = load_site(site_path) if site_path is not None else None
    except LayoutError as exc:
        return _report(exc)
    draw_layout(doc, args.output, site=site, places=places)
    print(f"wrote {args.output}")
    return 0
