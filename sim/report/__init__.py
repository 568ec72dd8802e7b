"""Simulation reports: KPI table (Markdown, JSON), plots, and comparing two reports.

:func:`write_report` is what both ``fleetd sim run`` and ``fleetd sim evaluate`` call at
the end; :func:`load_report` reads a folder back for ``fleetd sim compare``.
"""

from sim.report.folder import (
    LoadedReport,
    ReportError,
    load_record,
    load_report,
    write_report,
)
from sim.report.kpi import Kpis, compute_kpis
from sim.report.tables import compare_markdown

__all__ = [
    "Kpis",
    "LoadedReport",
    "ReportError",
    "compare_markdown",
    "compute_kpis",
    "load_record",
    "load_report",
    "write_report",
]
