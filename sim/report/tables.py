"""The KPI table as Markdown, and the flat rows that ``fleetd sim compare`` lines up (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: (key in the flat rows, label, unit). The order of the report's table.
ROWS: tuple[tuple[str, str, str], ...] = (
    ("missions_created", "missions created", ""),
    ("missions_served", "missions served (completed)", ""),
    ("missions_open_at_end", "missions still open at the end", ""),
    ("missions_failed", "missions failed", ""),
    ("missions_cancelled", "missions cancelled", ""),
    ("wait.mean_s", "pickup wait, mean", "s"),
    ("wait.p95_s", "pickup wait, p95", "s"),
    ("wait_by_priority.urgent.mean_s", "pickup wait, urgent, mean", "s"),
    ("wait_by_priority.urgent.p95_s", "pickup wait, urgent, p95", "s"),
    ("wait_by_priority.high.mean_s", "pickup wait, high, mean", "s"),
    ("wait_by_priority.high.p95_s", "pickup wait, high, p95", "s"),
    ("wait_by_priority.normal.mean_s", "pickup wait, normal, mean", "s"),
    ("wait_by_priority.normal.p95_s", "pickup wait, normal, p95", "s"),
    ("wait_by_priority.low.mean_s", "pickup wait, low, mean", "s"),
    ("wait_by_priority.low.p95_s", "pickup wait, low, p95", "s"),
    ("on_time_rate", "on-time rate", "%"),
    ("empty_distance_per_mission_m", "empty distance per mission", "m"),
    ("loaded_distance_per_mission_m", "loaded distance per mission", "m"),
    ("utilisation", "fleet utilisation", "%"),
    ("utilisation_by_kind.robot", "utilisation, robots", "%"),
    ("utilisation_by_kind.driver", "utilisation, drivers", "%"),
    ("reassignments", "reassignments", ""),
    ("messages_sent", "messages sent", ""),
    ("messages_received", "messages received", ""),
    ("daemon_errors", "daemon-side errors", ""),
    ("replans", "full re-plans", ""),
    ("quick_plans", "quick insertions (new missions)", ""),
    ("replan_p50_ms", "re-plan time, p50", "ms"),
    ("replan_p99_ms", "re-plan time, p99", "ms"),
    ("replan_max_ms", "re-plan time, max", "ms"),
)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def fmt(value: Any, unit: str) -> str:
    """A cell: percentages from fractions, one decimal for seconds and metres."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if unit == "%" and isinstance(value, int | float):
        return f"{100.0 * value:.1f} %"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _head(meta: Mapping[str, Any]) -> list[str]:
    return [
        f"# Simulation report: {meta.get('scenario')} ({meta.get('mode')})",
        "",
        f"strategy `{meta.get('strategy')}`, seed {meta.get('seed')}, "
        f"{float(meta.get('duration_s') or 0) / 3600:.2f} simulated hours, "
        f"{meta.get('vehicles')} vehicles",
        "",
    ]


def kpi_markdown(meta: Mapping[str, Any], kpis: Mapping[str, Any]) -> str:
    """The report's ``report.md``: header, KPI table, faults, errors, notes."""
    flat = flatten(kpis)
    lines = _head(meta)
    lines += ["| KPI | value |", "|---|---:|"]
    for key, label, unit in ROWS:
        if key in flat:
            suffix = f" ({unit})" if unit and unit != "%" else ""
            lines.append(f"| {label}{suffix} | {fmt(flat[key], unit)} |")
    lines += ["", "## Faults", ""]
    injected: Mapping[str, int] = kpis.get("faults_injected") or {}
    outcomes: Mapping[str, Mapping[str, int]] = kpis.get("fault_outcomes") or {}
    if not injected:
        lines.append("None injected.")
    else:
        lines += ["| fault | injected | what fleetd did |", "|---|---:|---|"]
        for kind, count in injected.items():
            did = ", ".join(f"{what} x{n}" for what, n in (outcomes.get(kind) or {}).items())
            lines.append(f"| {kind} | {count} | {did or 'nothing observed'} |")
    failures: Mapping[str, int] = kpis.get("failures_by_reason") or {}
    errors: Mapping[str, int] = kpis.get("daemon_errors_by_kind") or {}
    if failures or errors:
        lines += ["", "## Failures and errors", ""]
        lines += [f"- mission failed: {k} x{v}" for k, v in failures.items()]
        lines += [f"- daemon error: {k} x{v}" for k, v in errors.items()]
    extra: Mapping[str, Any] = kpis.get("extra") or {}
    if extra:
        lines += ["", "## Notes", ""]
        lines += [f"- {k}: {v}" for k, v in extra.items()]
    lines += [
        "",
        "## Plots",
        "",
        "![pickup wait by priority](wait_by_priority.png)",
        "![utilisation and battery](utilisation_battery.png)",
        "![missions open](missions_open.png)",
        "![layout and tracks](layout_tracks.png)",
        "",
    ]
    return "\n".join(lines)


def _diff(a: Any, b: Any, unit: str) -> str:
    if not isinstance(a, int | float) or not isinstance(b, int | float):
        return ""
    if isinstance(a, bool) or isinstance(b, bool):
        return ""
    delta = b - a
    if unit == "%":
        return f"{100.0 * delta:+.1f} pt"
    rel = f" ({100.0 * delta / a:+.1f} %)" if a else ""
    shown = f"{delta:+,.1f}" if isinstance(delta, float) else f"{delta:+,}"
    return shown + rel


def compare_markdown(
    meta_a: Mapping[str, Any],
    kpis_a: Mapping[str, Any],
    meta_b: Mapping[str, Any],
    kpis_b: Mapping[str, Any],
    label_a: str = "A",
    label_b: str = "B",
) -> str:
    """Two reports side by side: each KPI, and B minus A (absolute and relative)."""

    def who(meta: Mapping[str, Any]) -> str:
        return f"{meta.get('scenario')} / {meta.get('mode')} / {meta.get('strategy')}"

    fa, fb = flatten(kpis_a), flatten(kpis_b)
    lines = [
        "# Simulation reports compared",
        "",
        f"- {label_a}: {who(meta_a)}, seed {meta_a.get('seed')}",
        f"- {label_b}: {who(meta_b)}, seed {meta_b.get('seed')}",
        "",
        f"| KPI | {label_a} | {label_b} | {label_b} - {label_a} |",
        "|---|---:|---:|---:|",
    ]
    for key, label, unit in ROWS:
        if key not in fa and key not in fb:
            continue
        a, b = fa.get(key), fb.get(key)
        suffix = f" ({unit})" if unit and unit != "%" else ""
        lines.append(f"| {label}{suffix} | {fmt(a, unit)} | {fmt(b, unit)} | {_diff(a, b, unit)} |")
    kinds = sorted(
        set(kpis_a.get("faults_injected") or {}) | set(kpis_b.get("faults_injected") or {})
    )
    if kinds:
        lines += ["", f"| fault injected | {label_a} | {label_b} |", "|---|---:|---:|"]
        for kind in kinds:
            na = (kpis_a.get("faults_injected") or {}).get(kind, 0)
            nb = (kpis_b.get("faults_injected") or {}).get(kind, 0)
            lines.append(f"| {kind} | {na} | {nb} |")
    lines.append("")
    return "\n".join(lines)
