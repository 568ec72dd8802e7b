"""The report's pictures (matplotlib, Agg backend: no display needed).

- ``wait_by_priority.png``: the pickup-wait distribution per priority (box plot and
  histogram);
- ``utilisation_battery.png``: the share of vehicles holding a mission, and the robots'
  mean and lowest battery, over time;
- ``missions_open.png``: missions created but not yet ended, over time;
- ``layout_tracks.png``: the facility's robot layout with every vehicle's sampled track.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from geo.frames import MapFrame
from geo.layout.draw import draw_layout_on
from geo.layout.model import LifDocument
from geo.layout.site import Site
from sim.report.kpi import PRIORITIES
from sim.run_record import RunRecord

PLOTS = (
    "wait_by_priority.png",
    "utilisation_battery.png",
    "missions_open.png",
    "layout_tracks.png",
)

_COLOURS = {"urgent": "#c0392b", "high": "#e67e22", "normal": "#2e86c1", "low": "#7f8c8d"}


@dataclass(frozen=True)
class Backdrop:
    """What the tracks are drawn on: a layout, its site, place labels, and the map frame
    that turns drivers' lon/lat into the layout's metres."""

    doc: LifDocument | None = None
    site: Site | None = None
    places: dict[str, str] | None = None
    frame: MapFrame | None = None


def _hours(t_s: float) -> float:
    return t_s / 3600.0


def wait_plot(record: RunRecord, out: Path) -> None:
    present = [p for p in PRIORITIES if any(m.priority == p for m in record.missions)]
    waits = {
        p: [
            w / 60.0
            for m in record.missions
            if m.priority == p and (w := m.pickup_wait_s) is not None
        ]
        for p in present
    }
    fig, (box, hist) = plt.subplots(1, 2, figsize=(12, 5), dpi=100)
    try:
        data = [waits[p] or [0.0] for p in present]
        if present:
            box.boxplot(data, tick_labels=present, showfliers=True)
        box.set_ylabel("pickup wait (min)")
        box.set_title("pickup wait by priority")
        box.grid(True, axis="y", color="#eeeeee")
        for p in present:
            if waits[p]:
                hist.hist(waits[p], bins=30, alpha=0.5, label=p, color=_COLOURS.get(p))
        hist.set_xlabel("pickup wait (min)")
        hist.set_ylabel("missions")
        hist.set_title("distribution")
        if present:
            hist.legend()
        fig.tight_layout()
        fig.savefig(out)
    finally:
        plt.close(fig)


def utilisation_plot(record: RunRecord, out: Path) -> None:
    busy: dict[float, list[int]] = defaultdict(list)
    battery: dict[float, list[float]] = defaultdict(list)
    for s in record.samples:
        if s.online:
            busy[s.t_s].append(int(s.busy))
        if s.battery_pct is not None:
            battery[s.t_s].append(s.battery_pct)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 7), dpi=100, sharex=True)
    try:
        ts = sorted(busy)
        top.plot([_hours(t) for t in ts], [100.0 * sum(busy[t]) / len(busy[t]) for t in ts])
        top.set_ylabel("vehicles holding a mission (%)")
        top.set_ylim(0, 100)
        top.grid(True, color="#eeeeee")
        top.set_title("fleet utilisation")
        tb = sorted(battery)
        bottom.plot(
            [_hours(t) for t in tb], [sum(battery[t]) / len(battery[t]) for t in tb], label="mean"
        )
        bottom.plot([_hours(t) for t in tb], [min(battery[t]) for t in tb], label="lowest")
        bottom.set_ylabel("robot battery (%)")
        bottom.set_xlabel("simulated hours")
        bottom.set_ylim(0, 100)
        bottom.grid(True, color="#eeeeee")
        if tb:
            bottom.legend()
        fig.tight_layout()
        fig.savefig(out)
    finally:
        plt.close(fig)


def open_series(record: RunRecord) -> list[tuple[float, int]]:
    """(time, missions open from then on) at every creation and end (pure)."""
    changes: list[tuple[float, int]] = []
    for m in record.missions:
        changes.append((m.created_s, 1))
        ended = m.completed_s if m.final_status == "completed" else None
        if ended is not None:
            changes.append((ended, -1))
    changes.sort()
    out: list[tuple[float, int]] = [(0.0, 0)]
    level = 0
    for t, d in changes:
        level += d
        out.append((t, level))
    return out


def open_plot(record: RunRecord, out: Path) -> None:
    series = open_series(record)
    fig, ax = plt.subplots(figsize=(12, 4.5), dpi=100)
    try:
        ax.step([_hours(t) for t, _ in series], [n for _, n in series], where="post")
        ax.set_xlabel("simulated hours")
        ax.set_ylabel("missions open")
        ax.set_title("missions open (created, not yet completed)")
        ax.grid(True, color="#eeeeee")
        fig.tight_layout()
        fig.savefig(out)
    finally:
        plt.close(fig)


def _tracks(
    record: RunRecord, frame: MapFrame | None
) -> dict[str, tuple[str, list[float], list[float]]]:
    out: dict[str, tuple[str, list[float], list[float]]] = {}
    for s in record.samples:
        x, y = s.x, s.y
        if s.kind == "driver" and frame is not None:
            x, y = frame.from_wgs84(s.y, s.x)  # drivers are sampled as lon, lat
        _, xs, ys = out.setdefault(s.vehicle_id, (s.kind, [], []))
        xs.append(x)
        ys.append(y)
    return out


def tracks_plot(record: RunRecord, out: Path, backdrop: Backdrop) -> None:
    fig, ax = plt.subplots(figsize=(12, 10), dpi=100)
    try:
        if backdrop.doc is not None:
            draw_layout_on(ax, backdrop.doc, backdrop.site, backdrop.places)
        tracks = _tracks(record, backdrop.frame if backdrop.doc is not None else None)
        cmap = plt.get_cmap("tab20")
        for i, (_, (kind, xs, ys)) in enumerate(sorted(tracks.items())):
            style = "-" if kind == "robot" else ":"
            ax.plot(xs, ys, style, color=cmap(i % 20), lw=0.9, alpha=0.55, zorder=9)
        ax.plot([], [], "-", color="#444444", label="robot track")
        ax.plot([], [], ":", color="#444444", label="driver track")
        ax.set_aspect("equal")
        ax.set_xlabel("x (m, east)")
        ax.set_ylabel("y (m, north)")
        ax.legend(loc="upper right", fontsize=8)
        ax.set_title(f"{record.layout or 'facility'}: vehicle tracks (sampled)")
        fig.tight_layout()
        fig.savefig(out)
    finally:
        plt.close(fig)


def write_plots(record: RunRecord, folder: Path, backdrop: Backdrop) -> Sequence[Path]:
    """Every plot of :data:`PLOTS` into ``folder``."""
    paths = [folder / name for name in PLOTS]
    wait_plot(record, paths[0])
    utilisation_plot(record, paths[1])
    open_plot(record, paths[2])
    tracks_plot(record, paths[3], backdrop)
    return paths
