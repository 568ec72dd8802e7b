"""A picture of a layout: buildings, zones, edges (one-way ones as arrows), stations, places.

Uses matplotlib's Agg backend (no display). Imported only by the CLI, so loading layouts
never pulls in matplotlib.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.patches import Polygon as PolygonPatch

from geo.layout.model import LifDocument
from geo.layout.site import Site
from geo.layout.zones import ZoneKind

_ZONE_STYLE = {
    ZoneKind.NO_GO: {"facecolor": "#e8a0a0", "edgecolor": "#b22222", "hatch": "//"},
    ZoneKind.SLOW: {"facecolor": "#f5e6a0", "edgecolor": "#c8a000", "hatch": ".."},
}


def _draw_site(ax: Any, site: Site) -> None:
    for b in site.buildings:
        ax.add_patch(
            PolygonPatch(
                list(b.outline.exterior.coords),
                closed=True,
                facecolor="#e4e4ea",
                edgecolor="#8a8a99",
                lw=1.2,
                zorder=1,
            )
        )
        x0, _, x1, y1 = b.outline.bounds
        ax.text(
            (x0 + x1) / 2,
            y1 + 1.5,
            b.name,
            ha="center",
            va="bottom",
            fontsize=8,
            color="#555566",
            style="italic",
            zorder=5,
        )
    for zone, name in zip(site.zones.zones, site.zone_names, strict=True):
        coords = list(zone.geometry.exterior.coords)
        ax.add_patch(
            PolygonPatch(coords, closed=True, alpha=0.6, lw=1.2, zorder=2, **_ZONE_STYLE[zone.kind])
        )
        x0, y0, x1, _ = zone.geometry.bounds
        ax.text(
            (x0 + x1) / 2,
            y0 - 1.5,
            name,
            ha="center",
            va="top",
            fontsize=7,
            color="#7a1010",
            zorder=6,
        )


def _draw_edges(ax: Any, doc: LifDocument) -> None:
    pairs = {(e.start_node_id, e.end_node_id) for e in doc.edges.values()}
    for edge in doc.edges.values():
        a, b = doc.nodes[edge.start_node_id], doc.nodes[edge.end_node_id]
        restricted = any(
            p.load_restriction is not None and not p.load_restriction.loaded
            for p in edge.properties
        )
        style = "--" if restricted else "-"
        if (edge.end_node_id, edge.start_node_id) in pairs:
            if edge.start_node_id < edge.end_node_id:
                ax.plot([a.x, b.x], [a.y, b.y], style, color="#6b7b8c", lw=1.6, zorder=3)
            continue
        ax.annotate(
            "",
            xy=(b.x, b.y),
            xytext=(a.x, a.y),
            zorder=4,
            arrowprops={
                "arrowstyle": "-|>",
                "color": "#1f5fbf",
                "lw": 1.6,
                "linestyle": style,
                "shrinkA": 0,
                "shrinkB": 2,
                "mutation_scale": 10,
            },
        )


def _draw_nodes(ax: Any, doc: LifDocument, places: Mapping[str, str]) -> None:
    xs = [n.x for n in doc.nodes.values()]
    ys = [n.y for n in doc.nodes.values()]
    ax.scatter(xs, ys, s=6, color="#33363d", zorder=5, label="node")
    chargers = [doc.nodes[n] for s in doc.charging_stations() for n in s.interaction_node_ids]
    others = [
        doc.nodes[n]
        for lay in doc.layouts
        for s in lay.stations
        if not s.charging
        for n in s.interaction_node_ids
    ]
    ax.scatter(
        [n.x for n in others],
        [n.y for n in others],
        s=36,
        marker="s",
        color="#2e8b57",
        edgecolor="white",
        zorder=6,
        label="station",
    )
    ax.scatter(
        [n.x for n in chargers],
        [n.y for n in chargers],
        s=70,
        marker="P",
        color="#ff8c00",
        edgecolor="black",
        lw=0.5,
        zorder=7,
        label="charging station",
    )
    for node_id, name in places.items():
        node = doc.nodes.get(node_id)
        if node is not None:
            ax.annotate(
                name,
                (node.x, node.y),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=7.5,
                weight="bold",
                color="#12263f",
                zorder=8,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75},
            )


def draw_layout_on(
    ax: Any,
    doc: LifDocument,
    site: Site | None = None,
    places: Mapping[str, str] | None = None,
) -> None:
    """Draw ``doc`` (and ``site``) onto matplotlib axes ``ax``, for pictures that add
    their own layers (the simulator report's vehicle tracks); ``places`` as below."""
    if places is None:
        places = {
            s.interaction_node_ids[0]: s.station_id if s.name is None else s.name
            for lay in doc.layouts
            for s in lay.stations
            if not s.charging
        }
    if site is not None:
        _draw_site(ax, site)
    _draw_edges(ax, doc)
    _draw_nodes(ax, doc, places)


def draw_layout(
    doc: LifDocument,
    out: str | Path,
    site: Site | None = None,
    places: Mapping[str, str] | None = None,
    title: str | None = None,
) -> None:
    """Write a PNG of ``doc``; ``places`` maps node ids to the names to label them with
    (default: the stations' names)."""
    fig, ax = plt.subplots(figsize=(14, 12), dpi=110)
    try:
        draw_layout_on(ax, doc, site, places)
        ax.plot([], [], "-", color="#6b7b8c", lw=1.6, label="two-way path")
        ax.plot([], [], "-", color="#1f5fbf", lw=1.6, label="one-way (arrow)")
        ax.plot([], [], "--", color="#6b7b8c", lw=1.6, label="no passengers (load restriction)")
        ax.set_aspect("equal")
        ax.set_xlabel("x (m, east)")
        ax.set_ylabel("y (m, north)")
        ax.grid(True, color="#eeeeee", zorder=0)
        ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
        ax.set_title(title or doc.meta.project_identification)
        fig.tight_layout()
        fig.savefig(out)
    finally:
        plt.close(fig)
