"""The offline evaluation end to end on the demo campus: deterministic for a seed, the
engine's rules kept, a report written and compared (no broker, no database)."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pytest

from dispatcher.config import Settings
from sim import compare_cli, evaluate_cli
from sim.evaluate.configured import options_from_settings
from sim.evaluate.engine import EvaluateOptions, Evaluation
from sim.evaluate.site import Site, load_site
from sim.report import load_record, load_report, write_report
from sim.report.folder import FILES
from sim.report.plots import PLOTS
from sim.scenario import Scenario, load_scenario

TINY = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios" / "tiny-eval.toml"


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(Settings(), "demo-campus")


@pytest.fixture(scope="module")
def tiny() -> Scenario:
    return load_scenario(str(TINY))


def options(strategy: str) -> EvaluateOptions:
    return options_from_settings(Settings(), strategy, solution_limit=10, search_cap_s=30.0)


def _without_wall_times(rec: object) -> object:
    from sim.report.folder import record_to_dict

    data = record_to_dict(rec)  # type: ignore[arg-type]
    for r in data["replans"]:
        r["duration_s"] = 0.0
    data["notes"].pop("wall_s", None)
    return data


@pytest.mark.parametrize("strategy", ["optimise", "greedy"])
def test_the_same_seed_gives_the_same_run(site: Site, tiny: Scenario, strategy: str) -> None:
    first = Evaluation(tiny, site, options(strategy)).run()
    second = Evaluation(tiny, site, options(strategy)).run()
    assert first.missions, "the tiny scenario draws missions"
    assert _without_wall_times(first) == _without_wall_times(second)


def test_a_run_serves_its_missions_by_the_engines_rules(site: Site, tiny: Scenario) -> None:
    rec = Evaluation(tiny, site, options("optimise")).run()
    done = [m for m in rec.missions if m.final_status == "completed"]
    assert done, "missions completed within twenty simulated minutes"
    for m in done:
        assert m.assigned_s is not None and m.picked_up_s is not None and m.completed_s is not None
        assert m.created_s <= m.assigned_s <= m.picked_up_s < m.completed_s
        if m.window_start_s is not None:
            assert m.picked_up_s >= m.window_start_s  # an early vehicle waits for the rider
        assert m.loaded_distance_m is not None and m.loaded_distance_m > 0
    # The kind a mission asks for is the kind that served it.
    for m in done:
        if m.vehicle_kind == "robot":
            assert m.vehicle_id is not None and m.vehicle_id.startswith("r")
        if m.vehicle_kind == "driver":
            assert m.vehicle_id is not None and m.vehicle_id.startswith("d")
    assert rec.replans and any(r.quick for r in rec.replans)
    assert rec.samples and {s.kind for s in rec.samples} == {"robot", "driver"}


def test_low_robots_go_to_charge(site: Site, tiny: Scenario) -> None:
    low = tiny.model_copy(
        update={"fleet": tiny.fleet.model_copy(update={"battery_start": (16.0, 20.0)})}
    )
    rec = Evaluation(low, site, options("greedy")).run()
    assert int(rec.notes.get("charge_trips", 0)) >= 1


def test_report_writes_every_file_and_reads_back(
    site: Site, tiny: Scenario, tmp_path: Path
) -> None:
    rec = Evaluation(tiny, site, options("greedy")).run()
    write_report(rec, tmp_path / "r")
    for name in (*FILES, *PLOTS):
        assert (tmp_path / "r" / name).stat().st_size > 0, name
    loaded = load_report(tmp_path / "r")
    assert loaded.meta["strategy"] == "greedy"
    assert loaded.kpis["missions_created"] == len(rec.missions)
    assert load_record(tmp_path / "r") == rec
    assert (tmp_path / "r" / "layout_tracks.png").read_bytes()[:4] == b"\x89PNG"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=None)
    sub = parser.add_subparsers(dest="command", required=True)
    evaluate_cli.register(sub)
    compare_cli.register(sub)
    return parser


def test_evaluate_and_compare_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = _parser()
    for strategy in ("greedy", "optimise"):
        args = parser.parse_args(
            [
                "evaluate",
                str(TINY),
                "--strategy",
                strategy,
                "--out",
                str(tmp_path / strategy),
                "--hours",
                "0.25",
                "--quiet",
                "--solution-limit",
                "10",
            ]
        )
        assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "| pickup wait, mean (s) |" in out and "report written to" in out
    args = parser.parse_args(
        [
            "compare",
            str(tmp_path / "greedy"),
            str(tmp_path / "optimise"),
            "--out",
            str(tmp_path / "c.md"),
        ]
    )
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "tiny-eval / evaluate / greedy" in text and "tiny-eval / evaluate / optimise" in text
    assert "| missions created |" in text
    assert (tmp_path / "c.md").read_text(encoding="utf-8") + "\n" == text
    kpis = json.loads((tmp_path / "greedy" / "kpis.json").read_text(encoding="utf-8"))
    assert kpis["meta"]["duration_s"] == pytest.approx(900.0)


class TestBadInput:
    def test_unknown_scenario(self, capsys: pytest.CaptureFixture[str]) -> None:
        args = _parser().parse_args(["evaluate", "no-such-scenario", "--quiet"])
        assert args.func(args) == 2
        assert "no such scenario" in capsys.readouterr().err

    def test_bad_limits(self, capsys: pytest.CaptureFixture[str]) -> None:
        args = _parser().parse_args(["evaluate", str(TINY), "--solution-limit", "0"])
        assert args.func(args) == 2
        args = _parser().parse_args(["evaluate", str(TINY), "--hours", "-1"])
        assert args.func(args) == 2

    def test_unknown_facility(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = tmp_path / "s.toml"
        path.write_text('name = "x"\nfacility = "elsewhere"\n', encoding="utf-8")
        args = _parser().parse_args(["evaluate", str(path), "--quiet"])
        assert args.func(args) == 2
        assert "elsewhere" in capsys.readouterr().err

    def test_compare_a_folder_that_is_no_report(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / "kpis.json").write_text("[1, 2]", encoding="utf-8")
        for a in (tmp_path / "missing", tmp_path / "bad"):
            args = _parser().parse_args(["compare", str(a), str(a)])
            assert args.func(args) == 2
        assert "not a report folder" in capsys.readouterr().err


def test_unknown_strategy_is_refused_by_the_parser() -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["evaluate", str(TINY), "--strategy", "magic"])


def test_replace_keeps_options_frozen() -> None:
    o = options("greedy")
    assert replace(o, strategy="optimise").strategy == "optimise"
    assert o.planner.solution_limit == 10 and o.planner.deterministic


def test_an_empty_battery_goes_to_charge_too(site: Site, tiny: Scenario) -> None:
    # 0 % is a reading, not "no battery": every robot is sent to a charger.
    flat = tiny.model_copy(
        update={
            "fleet": tiny.fleet.model_copy(update={"battery_start": (0.0, 0.0)}),
            "workload": tiny.workload.model_copy(update={"missions_per_hour": 0.0}),
        }
    )
    rec = Evaluation(flat, site, options("greedy")).run()
    assert int(rec.notes.get("charge_trips", 0)) >= tiny.fleet.robots
    last = max(s.t_s for s in rec.samples)
    assert all(
        (s.battery_pct or 0.0) > 50.0 for s in rec.samples if s.t_s == last and s.kind == "robot"
    )


def test_bookings_are_released_when_due_not_when_made(site: Site, tiny: Scenario) -> None:
    """Every mission booked 20-25 minutes ahead: none is given a vehicle when it is made
    (only once its window opens within the travel plus the release margin), none is
    picked up before its window, and with robots to spare they are picked up in it."""
    booked = tiny.model_copy(
        update={
            "duration_s": 2100.0,
            "workload": tiny.workload.model_copy(
                update={
                    "missions_per_hour": 12.0,
                    "scheduled_fraction": 1.0,
                    "window_lead_s": (1200.0, 1500.0),
                }
            ),
        }
    )
    opts = options("optimise")
    rec = Evaluation(booked, site, opts).run()
    served = [m for m in rec.missions if m.picked_up_s is not None]
    assert served, "bookings made early in the run are served within it"
    for m in rec.missions:
        assert m.window_start_s is not None and m.window_end_s is not None
        if m.assigned_s is None:
            continue
        # Ten minutes is more than any trip across the demo campus.
        assert m.assigned_s >= m.window_start_s - opts.rules.release_margin_s - 600.0
        assert m.assigned_s - m.created_s > 600.0
    for m in served:
        assert m.picked_up_s is not None
        assert m.window_start_s is not None and m.window_end_s is not None
        assert m.window_start_s <= m.picked_up_s <= m.window_end_s
