"""Generate fleetd's shipped example facility: a hospital campus (deterministic).

Writes, from the plan below and nothing random:
  geo/maps/hospital-campus.lif.json      the robots' route graph (VDA LIF 1.0)
  geo/maps/hospital-campus.site.json     building outlines and zones, for drawing and demos
  geo/maps/hospital-campus.roads.geojson the public streets around it, for drivers
  geo/maps/demo-campus.toml              the facility configuration (map frame, places)
and replaces the [[facilities]] block at the end of configs/fleetd.example.toml with the
same configuration.

Map frame "campus": origin at the south-west gate (52.52000 N, 13.40500 E), x east,
y north, metres. Places keep the coordinates of fleetd's earlier six-place demo campus;
every place's lat/lon is its node's position converted through that frame.

Run: .venv/bin/python scripts/gen_campus.py
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geo.facility import MapSpec
from geo.frames import MapFrame

REPO = Path(__file__).resolve().parents[1]
MAPS = REPO / "geo" / "maps"
EXAMPLE = REPO / "configs" / "fleetd.example.toml"

MAP_ID = "campus"
ORIGIN = (52.52000, 13.40500)
VEHICLE_TYPE = "simbot.wheelchair"
LAYOUT_ID = "campus-ground"
LAYOUT_VERSION = "1"
OUTDOOR_SPEED = 1.5
CORRIDOR_SPEED = 1.0
ONE_WAY_SPEED = 0.8
#: Outdoor paths get a node at least every this many metres (order granularity).
STEP_M = 20.0

FRAME = MapFrame(MapSpec(MAP_ID, ORIGIN[0], ORIGIN[1]))


def at(lat: float, lon: float) -> tuple[float, float]:
    """A node position (3 decimals) for a place whose coordinates are fixed."""
    x, y = FRAME.from_wgs84(lat, lon)
    return round(x, 3), round(y, 3)


# The six places of the earlier demo campus keep their coordinates (docs and tests use them).
ENTRANCE = at(52.52010, 13.40520)
WARD_A = at(52.52180, 13.40610)
WARD_B = at(52.52205, 13.40890)
RADIOLOGY = at(52.52090, 13.40950)
PHYSIO = at(52.52300, 13.40720)
CHARGING_BAY = at(52.52030, 13.40780)


@dataclass
class Plan:
    nodes: dict[str, tuple[float, float, str | None]] = field(default_factory=dict)
    edges: list[tuple[str, str, float, bool]] = field(default_factory=list)
    #: node id -> (place name or None, charger?)
    stations: dict[str, tuple[str | None, bool]] = field(default_factory=dict)
    places: dict[str, str] = field(default_factory=dict)
    buildings: list[dict[str, Any]] = field(default_factory=list)
    service_only: set[tuple[str, str]] = field(default_factory=set)

    def node(self, nid: str, xy: tuple[float, float], name: str | None = None) -> str:
        if nid in self.nodes:
            raise ValueError(f"node {nid} twice")
        self.nodes[nid] = (round(xy[0], 3), round(xy[1], 3), name)
        return nid

    def link(self, a: str, b: str, speed: float) -> None:
        self.edges.append((a, b, speed, True))

    def path(self, prefix: str, ids: list[str], speed: float, one_way: bool = False) -> None:
        """Join existing nodes ``ids`` in order, adding nodes every STEP_M on long legs.

        Added nodes are named ``{prefix}-{leg}-{i}``; two-way unless ``one_way``.
        """
        for k, (a, b) in enumerate(itertools.pairwise(ids)):
            xa, ya, _ = self.nodes[a]
            xb, yb, _ = self.nodes[b]
            parts = max(1, math.ceil(math.hypot(xb - xa, yb - ya) / STEP_M))
            prev = a
            for i in range(1, parts):
                t = i / parts
                mid = self.node(f"{prefix}-{k}-{i}", (xa + t * (xb - xa), ya + t * (yb - ya)))
                self._both(prev, mid, speed, one_way)
                prev = mid
            self._both(prev, b, speed, one_way)

    def _both(self, a: str, b: str, speed: float, one_way: bool) -> None:
        self.link(a, b, speed)
        if not one_way:
            self.link(b, a, speed)

    def place(self, nid: str, name: str, charger: bool = False) -> None:
        self.stations[nid] = (name, charger)
        self.places[name] = nid

    def charger(self, nid: str) -> None:
        self.stations[nid] = (None, True)

    def spur(self, base: str, nid: str, dx: float, dy: float, name: str) -> str:
        x, y, _ = self.nodes[base]
        self.node(nid, (x + dx, y + dy), name)
        self.link(base, nid, CORRIDOR_SPEED)
        self.link(nid, base, CORRIDOR_SPEED)
        return nid

    def building(self, name: str, x0: float, y0: float, x1: float, y1: float) -> None:
        self.buildings.append(
            {"name": name, "polygon": [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]}
        )


def outdoor(p: Plan) -> None:
    """Junctions of the outdoor paths, then the paths between them (all two-way)."""
    j = {
        "gate": ENTRANCE,
        "s1": (150.0, 12.0),
        "s2": (250.0, 12.0),
        "s3": (380.0, 12.0),
        "w1": (12.0, 160.0),
        "w2": (12.0, 285.0),
        "c1": (140.0, 105.0),
        "c2": (140.0, 160.0),
        "c3": (150.0, 285.0),
        "hs": (212.0, 105.0),
        "ds": (282.0, WARD_B[1] - 128.0),
        "e1": (380.0, 105.0),
        "e2": (380.0, 170.0),
        "e3": (380.0, 285.0),
        "wa": (WARD_A[0], 160.0),
        "wn": (WARD_A[0], 285.0),
        "hn": (212.0, 228.125),
        "n2": (222.0, 285.0),
        "n3": (310.0, 285.0),
        "dep-w": (150.0, CHARGING_BAY[1]),
        "dep-e": (250.0, CHARGING_BAY[1]),
    }
    j["ds"] = (282.0, RADIOLOGY[1])
    for key, xy in j.items():
        p.node("entrance" if key == "gate" else f"out-{key}", xy, None)
    n = {k: ("entrance" if k == "gate" else f"out-{k}") for k in j}
    routes = [
        ("south-avenue", ["gate", "s1", "s2", "s3"]),
        ("west-path", ["gate", "w1", "w2"]),
        # Straight across the field where the new wing is being built (the no-go zone).
        ("field-path", ["gate", "wa"]),
        ("central-walk", ["s1", "c1", "c2", "c3"]),
        ("hospital-drive", ["w1", "wa", "c2"]),
        ("clinic-road", ["c1", "hs", "ds", "e1"]),
        ("east-path", ["s3", "e1", "e2", "e3"]),
        ("north-walk", ["w2", "wn", "c3", "n2", "n3", "e3"]),
        ("garden-path", ["hn", "n2"]),
        ("depot-west", ["s1", "dep-w"]),
        ("depot-east", ["dep-e", "s2"]),
    ]
    for name, ids in routes:
        p.path(name, [n[i] for i in ids], OUTDOOR_SPEED)
    p.place("entrance", "Main Entrance")


def main_hospital(p: Plan) -> None:
    """A ring corridor, one-way counter-clockwise (too narrow for two wheelchairs)."""
    p.building("Main Hospital", 150, 120, 275, 200)
    ring = {"sw": (165.0, 135.0), "se": (260.0, 135.0), "ne": (260.0, 185.0), "nw": (165.0, 185.0)}
    for k, xy in ring.items():
        p.node(f"h-{k}", xy)
    p.path("h-ring", ["h-sw", "h-se", "h-ne", "h-nw", "h-sw"], ONE_WAY_SPEED, one_way=True)
    # Doors: south (from the clinic road), west (from the hospital drive), north (garden).
    p.node("h-door-s", (212.0, 120.0), "Main Hospital south door")
    p.path("h-south", ["out-hs", "h-door-s", "h-ring-0-2"], CORRIDOR_SPEED)
    p.node("h-door-w", (150.0, 160.0), "Main Hospital west door")
    p.path("h-west", ["out-c2", "h-door-w", "h-ring-3-1"], CORRIDOR_SPEED)
    p.node("h-door-n", (212.0, 200.0), "Main Hospital north door")
    p.path("h-north", ["h-ring-2-2", "h-door-n", "out-hn"], CORRIDOR_SPEED)
    p.place(p.spur("h-door-s", "h-lobby", -10.0, 3.0, "Main Lobby"), "Main Lobby")
    rooms = [
        ("h-ring-0-1", "h-emergency", 0, -6, "Emergency"),
        ("h-ring-0-4", "h-admissions", 0, -6, "Admissions"),
        ("h-ring-1-1", "h-lab", 6, 0, "Laboratory"),
        ("h-ring-2-1", "h-pharmacy", 0, 6, "Pharmacy"),
        ("h-ring-2-4", "h-surgery", 0, 6, "Surgery"),
        ("h-ring-3-2", "h-cafeteria", -6, 0, "Cafeteria"),
        ("h-ring-1-2", "h-icu", -6, 0, "Intensive Care"),
    ]
    for base, nid, dx, dy, name in rooms:
        p.place(p.spur(base, nid, dx, dy, name), name)
    for i, base in enumerate(["h-ring-0-3", "h-ring-2-3"]):
        p.charger(p.spur(base, f"h-charger-{i + 1}", 0, -5 if i == 0 else 5, "charger"))
    # A kitchen service passage across the ring: staff carts only, never with a passenger.
    p.node("h-kitchen", (212.0, 160.0), "Kitchen")
    p.link("h-ring-3-1", "h-kitchen", CORRIDOR_SPEED)
    p.link("h-kitchen", "h-ring-1-1", CORRIDOR_SPEED)
    p.service_only |= {("h-ring-3-1", "h-kitchen"), ("h-kitchen", "h-ring-1-1")}


def ward_a(p: Plan) -> None:
    p.building("Ward Block A", 50, 178, 100, 255)
    x = WARD_A[0]
    p.node("a-door", (x, 178.0), "Ward Block A door")
    p.node("ward-a", WARD_A, "Ward A")
    p.node("a-north", (x, 248.0), "Ward Block A north door")
    p.path("a-corridor", ["out-wa", "a-door", "ward-a", "a-north", "out-wn"], CORRIDOR_SPEED)
    p.place("ward-a", "Ward A")
    p.place(p.spur("a-corridor-2-1", "a-dayroom", 10, 0, "Ward A Day Room"), "Ward A Day Room")
    p.place(p.spur("a-corridor-2-2", "a-nurses", -10, 0, "Ward A Nurses"), "Ward A Nurses")
    p.charger(p.spur("a-corridor-1-1", "a-charger", -8, 0, "charger"))


def ward_b(p: Plan) -> None:
    """Two parallel one-way corridors forming a loop (south one eastbound)."""
    p.building("Ward Block B", 235, 215, 300, 275)
    y0, y1 = WARD_B[1], 262.0
    p.node("b-door", (235.0, y0), "Ward Block B door")
    p.node("ward-b", WARD_B, "Ward B")
    for k, xy in {
        "sw": (242.0, y0),
        "se": (292.0, y0),
        "ne": (292.0, y1),
        "nw": (242.0, y1),
    }.items():
        p.node(f"b-{k}", xy)
    p.path("b-entry", ["out-hn", "b-door", "b-sw"], CORRIDOR_SPEED)
    p.path(
        "b-loop", ["b-sw", "ward-b", "b-se", "b-ne", "b-nw", "b-sw"], ONE_WAY_SPEED, one_way=True
    )
    p.place("ward-b", "Ward B")
    p.place(p.spur("b-loop-3-2", "b-nurses", 0, 6, "Ward B Nurses"), "Ward B Nurses")
    p.place(p.spur("b-loop-2-1", "b-dayroom", 6, 0, "Ward B Day Room"), "Ward B Day Room")
    p.charger(p.spur("b-loop-1-1", "b-charger", 0, -6, "charger"))


def rehab(p: Plan) -> None:
    p.building("Rehabilitation Centre", 115, 300, 190, 355)
    p.node("r-door", (150.0, 300.0), "Rehabilitation door")
    p.node("physio", PHYSIO, "Physiotherapy")
    p.node("r-west", (122.0, PHYSIO[1]))
    p.node("r-east", (182.0, PHYSIO[1]))
    p.path("r-entry", ["out-c3", "r-door", "physio"], CORRIDOR_SPEED)
    p.path("r-corridor", ["r-west", "physio", "r-east"], CORRIDOR_SPEED)
    p.place("physio", "Physiotherapy")
    p.place(p.spur("r-west", "r-hydro", 0, 10, "Hydrotherapy"), "Hydrotherapy")
    p.place(p.spur("r-east", "r-gym", 0, 10, "Rehab Gym"), "Rehab Gym")
    p.charger(p.spur("r-corridor-1-1", "r-charger", 0, -8, "charger"))


def diagnostics(p: Plan) -> None:
    p.building("Diagnostics Centre", 295, 70, 360, 130)
    y = RADIOLOGY[1]
    p.node("d-door", (295.0, y), "Diagnostics door")
    p.node("radiology", RADIOLOGY, "Radiology")
    p.node("d-east", (352.0, y))
    p.path("d-corridor", ["out-ds", "d-door", "radiology", "d-east"], CORRIDOR_SPEED)
    p.place("radiology", "Radiology")
    p.place(p.spur("d-corridor-2-1", "d-mri", 0, 12, "MRI"), "MRI")
    p.place(p.spur("d-corridor-2-2", "d-ct", 0, -12, "CT Scanner"), "CT Scanner")
    p.charger(p.spur("d-east", "d-charger", 0, 8, "charger"))


def outpatients(p: Plan) -> None:
    p.building("Outpatient Clinic", 320, 180, 400, 245)
    p.node("o-door", (380.0, 180.0), "Outpatient Clinic door")
    p.node("o-hall", (360.0, 200.0), "Outpatients")
    p.node("o-west", (330.0, 225.0))
    p.path("o-entry", ["out-e2", "o-door", "o-hall", "o-west"], CORRIDOR_SPEED)
    p.place("o-hall", "Outpatients")
    p.place(p.spur("o-west", "o-cardio", 0, 10, "Cardiology Clinic"), "Cardiology Clinic")
    p.place(p.spur("o-entry-2-1", "o-derm", 10, 8, "Dermatology"), "Dermatology")


def depot(p: Plan) -> None:
    """The Energy & Logistics Centre: a corridor with six chargers, doors at both ends."""
    p.building("Energy & Logistics Centre", 160, 18, 240, 55)
    y = CHARGING_BAY[1]
    p.node("l-door-w", (160.0, y), "Depot west door")
    p.node("charging-1", CHARGING_BAY, "Charging Bay")
    p.node("l-door-e", (240.0, y), "Depot east door")
    p.place("charging-1", "Charging Bay", charger=True)
    xs = [170.0, 182.0, 202.0, 214.0, 226.0]
    for k, x in enumerate(xs):
        p.node(f"l-bay-{k + 2}", (x, y))
    corridor = [
        "out-dep-w",
        "l-door-w",
        "l-bay-2",
        "l-bay-3",
        "charging-1",
        "l-bay-4",
        "l-bay-5",
        "l-bay-6",
        "l-door-e",
        "out-dep-e",
    ]
    p.path("l-corridor", corridor, CORRIDOR_SPEED)
    for k in range(2, 7):
        p.charger(p.spur(f"l-bay-{k}", f"charger-{k}", 0, 9, f"Charger {k}"))


def build() -> Plan:
    p = Plan()
    outdoor(p)
    main_hospital(p)
    ward_a(p)
    ward_b(p)
    rehab(p)
    diagnostics(p)
    outpatients(p)
    depot(p)
    p.place(p.spur("south-avenue-0-3", "car-park", 0.0, -8.0, "Car Park stop"), "Car Park")
    return p


# -- output ---------------------------------------------------------------------------


def _node_json(nid: str, x: float, y: float, name: str | None, charger: bool) -> dict[str, Any]:
    props: dict[str, Any] = {"vehicleTypeId": VEHICLE_TYPE}
    if charger:
        props["actions"] = [
            {"actionType": a, "requirementType": "CONDITIONAL", "blockingType": "HARD"}
            for a in ("startCharging", "stopCharging")
        ]
    node: dict[str, Any] = {"nodeId": nid}
    if name:
        node["nodeName"] = name
    node |= {
        "mapId": MAP_ID,
        "nodePosition": {"x": x, "y": y},
        "vehicleTypeNodeProperties": [props],
    }
    return node


def _edge_json(p: Plan, a: str, b: str, speed: float) -> dict[str, Any]:
    props: dict[str, Any] = {
        "vehicleTypeId": VEHICLE_TYPE,
        "rotationAllowed": True,
        "maxSpeed": speed,
    }
    if (a, b) in p.service_only:
        props["loadRestriction"] = {"unloaded": True, "loaded": False}
    return {
        "edgeId": f"{a}>{b}",
        "startNodeId": a,
        "endNodeId": b,
        "vehicleTypeEdgeProperties": [props],
    }


def lif(p: Plan) -> dict[str, Any]:
    chargers = {n for n, (_, c) in p.stations.items() if c}
    stations = []
    for k, (nid, (name, charger)) in enumerate(sorted(p.stations.items())):
        x, y, _ = p.nodes[nid]
        label = name or f"Charger {k + 1}"
        stations.append(
            {
                "stationId": f"st-{nid}",
                "interactionNodeIds": [nid],
                "stationName": label,
                "stationDescription": "charging station" if charger else "pick-up and drop-off",
                "stationPosition": {"x": x, "y": y},
            }
        )
    return {
        "metaInformation": {
            "projectIdentification": "fleetd demo hospital campus",
            "creator": "fleetd scripts/gen_campus.py",
            "exportTimestamp": "2026-01-01T00:00:00.00Z",
            "lifVersion": "1.0.0",
        },
        "layouts": [
            {
                "layoutId": LAYOUT_ID,
                "layoutName": "Hospital campus, ground level",
                "layoutVersion": LAYOUT_VERSION,
                "layoutLevelId": "0",
                "layoutDescription": "Outdoor paths and ground-floor corridors of seven buildings.",
                "nodes": [
                    _node_json(n, x, y, name, n in chargers) for n, (x, y, name) in p.nodes.items()
                ],
                "edges": [_edge_json(p, a, b, s) for a, b, s, _ in p.edges],
                "stations": stations,
            }
        ],
    }


def site(p: Plan) -> dict[str, Any]:
    return {
        "mapId": MAP_ID,
        "buildings": p.buildings,
        "zones": [
            {
                "zoneId": "construction-new-wing",
                "kind": "no_go",
                "name": "Construction site (new wing)",
                "polygon": [[20, 60], [120, 60], [120, 140], [20, 140], [20, 60]],
            },
            {
                "zoneId": "lobby-slow",
                "kind": "slow",
                "name": "Main Lobby, walk speed",
                "speedLimitMps": 0.5,
                "polygon": [[195, 112], [230, 112], [230, 130], [195, 130], [195, 112]],
            },
        ],
    }


def roads() -> dict[str, Any]:
    """Public streets around the campus and the access roads to its doors (lon, lat)."""
    lines: dict[str, list[tuple[float, float]]] = {
        "south-street": [(-30, -15), (200, -15), (430, -15)],
        "east-street": [(430, -15), (430, 105), (430, 390)],
        "north-street": [(430, 390), (200, 390), (-30, 390)],
        "west-street": [(-30, 390), (-30, 11.128), (-30, -15)],
        "gate-access": [(-30, 11.128), ENTRANCE],
        "depot-access": [(200, -15), (250, -15), (250, 12)],
        "clinic-access": [(430, 105), (380, 105)],
        "rehab-access": [(200, 390), (150, 360), (150, 300)],
    }
    features = []
    for rid, pts in lines.items():
        coords = []
        for x, y in pts:
            lat, lon = FRAME.to_wgs84(x, y)
            coords.append([round(lon, 7), round(lat, 7)])
        features.append(
            {
                "type": "Feature",
                "properties": {"id": rid},
                "geometry": {"type": "LineString", "coordinates": coords},
            }
        )
    return {"type": "FeatureCollection", "features": features}


_HEADER = """\
# Facilities (sites). With none configured, fleetd uses the built-in demo hospital campus,
# which is exactly the block below (geo/maps/demo-campus.toml, written by
# scripts/gen_campus.py). Replace it with your own sites.
# key: stable identifier (lowercase letters, digits, '_', '-'); facility ids derive from it,
# so do not rename a key once missions refer to it.
"""


def toml_block(p: Plan) -> str:
    out = [
        "[[facilities]]",
        'key = "demo-campus"',
        'name = "Demo Hospital Campus"',
        "# IANA time zone name, for local times in reports.",
        'timezone = "Europe/Berlin"',
        "# VDA LIF files with the robots' route graph (docs/layouts.md). 'fleetd:NAME' is a",
        "# file shipped with fleetd; a relative path is relative to this configuration file.",
        'layouts = ["fleetd:hospital-campus.lif.json"]',
        "# Drivers' roads as GeoJSON LineStrings (same path rules); empty: straight-line",
        "# distance times a detour factor.",
        'roads = "fleetd:hospital-campus.roads.geojson"',
        "# Drivers: geodesic distance times this factor off the roads, at this speed (m/s).",
        "driver_detour_factor = 1.4",
        "driver_speed_mps = 8.0",
        "",
        "# A robot map frame: map_id as the robots report it in VDA 5050 agvPosition.mapId,",
        "# where its origin lies (WGS84 degrees) and the angle from geographic east to the",
        "# map's +x axis, counter-clockwise, in degrees. A map_id may belong to one facility.",
        "[[facilities.maps]]",
        f'map_id = "{MAP_ID}"',
        f"origin_lat = {ORIGIN[0]:.5f}",
        f"origin_lon = {ORIGIN[1]:.5f}",
        "rotation_deg = 0.0",
        "",
        "# Named places operators use as pickups and dropoffs; node_id is the robots'",
        "# route-graph node for the place (optional). Names are unique within a facility.",
    ]
    for name, nid in p.places.items():
        x, y, _ = p.nodes[nid]
        lat, lon = FRAME.to_wgs84(x, y)
        out += [
            "[[facilities.places]]",
            f'name = "{name}"',
            f"lat = {lat:.6f}",
            f"lon = {lon:.6f}",
            f'node_id = "{nid}"',
            "",
        ]
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    p = build()
    (MAPS / "hospital-campus.lif.json").write_text(json.dumps(lif(p), indent=1) + "\n")
    (MAPS / "hospital-campus.site.json").write_text(json.dumps(site(p), indent=1) + "\n")
    (MAPS / "hospital-campus.roads.geojson").write_text(json.dumps(roads(), indent=1) + "\n")
    block = toml_block(p)
    (MAPS / "demo-campus.toml").write_text(
        "# The demo hospital campus shipped with fleetd, used when the configuration names no\n"
        "# facility. Generated by scripts/gen_campus.py: edit that, not this file.\n\n" + block
    )
    text = EXAMPLE.read_text()
    start = text.index("# Facilities (sites).")
    EXAMPLE.write_text(text[:start] + _HEADER + block)
    chargers = sum(1 for _, c in p.stations.values() if c)
    sys.stdout.write(
        f"{len(p.nodes)} nodes, {len(p.edges)} edges, {len(p.stations)} stations "
        f"({chargers} chargers), {len(p.places)} places\n"
    )


if __name__ == "__main__":
    main()
