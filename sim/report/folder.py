"""A report folder: ``report.md`` and ``kpis.json`` (the KPI table), ``record.json`` (the
raw run record, to re-plot or re-compute), and the plots (:mod:`sim.report.plots`).

Both simulator modes write one with :func:`write_report`; ``fleetd sim compare`` reads two
back with :func:`load_report`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sim.report.kpi import compute_kpis
from sim.report.plots import Backdrop, write_plots
from sim.report.tables import kpi_markdown
from sim.run_record import FaultRecord, MissionRecord, ReplanRecord, RunRecord, VehicleSample

#: The files every report folder holds (plots added by :data:`sim.report.plots.PLOTS`).
FILES = ("report.md", "kpis.json", "record.json")


class ReportError(ValueError):
    """A folder that is not a readable report, with the file and the reason."""


def _meta(record: RunRecord) -> dict[str, Any]:
    return {
        "scenario": record.scenario,
        "mode": record.mode,
        "strategy": record.strategy,
        "seed": record.seed,
        "duration_s": record.duration_s,
        "vehicles": record.vehicles,
        "layout": record.layout,
    }


def record_to_dict(record: RunRecord) -> dict[str, Any]:
    return asdict(record)


def record_from_dict(data: dict[str, Any]) -> RunRecord:
    """The inverse of :func:`record_to_dict`."""
    fields = dict(data)
    missions = [MissionRecord(**m) for m in fields.pop("missions", [])]
    samples = [VehicleSample(**s) for s in fields.pop("samples", [])]
    faults = [FaultRecord(**f) for f in fields.pop("faults", [])]
    replans = [ReplanRecord(**r) for r in fields.pop("replans", [])]
    return RunRecord(**fields, missions=missions, samples=samples, faults=faults, replans=replans)


def backdrop_for(layout: str | None) -> Backdrop:
    """The layout a run's tracks are drawn on: ``layout`` is a facility key of the
    built-in/default configuration or a LIF file; anything unreadable draws no backdrop."""
    if not layout:
        return Backdrop()
    from dispatcher.config import Settings
    from dispatcher.facility_layouts import resolve
    from geo.frames import MapFrame
    from geo.layout.errors import LayoutError
    from geo.layout.loader import load_lif
    from geo.layout.site import load_site

    try:
        facilities = {f.key: f for f in Settings().effective_facilities}
        facility = facilities.get(layout)
        paths = [resolve(ref, None) for ref in facility.layouts] if facility else [Path(layout)]
        if not paths:
            return Backdrop()
        doc = load_lif(paths[0])
        name = paths[0].name.removesuffix(".json").removesuffix(".lif")
        site_path = paths[0].with_name(f"{name}.site.json")
        site = load_site(site_path) if site_path.exists() else None
        places = (
            {p.node_id: p.name for p in facility.places if p.node_id is not None}
            if facility
            else None
        )
        frame = MapFrame(facility.maps[0].to_spec()) if facility and facility.maps else None
        return Backdrop(doc, site, places, frame)
    except (LayoutError, OSError, ValueError):
        return Backdrop()


def write_report(record: RunRecord, folder: Path) -> None:
    """Write ``record``'s report into ``folder`` (created; files in it are replaced)."""
    folder.mkdir(parents=True, exist_ok=True)
    kpis = compute_kpis(record).to_dict()
    meta = _meta(record)
    (folder / "kpis.json").write_text(
        json.dumps({"meta": meta, "kpis": kpis}, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    (folder / "record.json").write_text(
        json.dumps(record_to_dict(record), separators=(",", ":")) + "\n", encoding="utf-8"
    )
    (folder / "report.md").write_text(kpi_markdown(meta, kpis), encoding="utf-8")
    write_plots(record, folder, backdrop_for(record.layout))


@dataclass(frozen=True)
class LoadedReport:
    """A report folder read back: its header and its KPI table (as written)."""

    folder: Path
    meta: dict[str, Any]
    kpis: dict[str, Any]


def load_report(folder: Path) -> LoadedReport:
    """Read ``folder/kpis.json``; :class:`ReportError` when it is missing or malformed."""
    path = folder / "kpis.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: not a report folder (no kpis.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: cannot read: {exc}") from exc
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("meta"), dict)
        or not isinstance(data.get("kpis"), dict)
    ):
        raise ReportError(f"{path}: expected an object with 'meta' and 'kpis'")
    return LoadedReport(folder, data["meta"], data["kpis"])


def load_record(folder: Path) -> RunRecord:
    """Read ``folder/record.json`` back into a :class:`RunRecord`."""
    path = folder / "record.json"
    try:
        return record_from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
        raise ReportError(f"{path}: cannot read: {exc}") from exc
