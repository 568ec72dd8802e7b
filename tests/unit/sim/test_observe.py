"""Reading fleetd's event stream and metrics, and matching faults to what fleetd did."""

from __future__ import annotations

import json

from dispatcher.cli import build_parser
from sim.observe import (
    Injected,
    SeenEvent,
    apply_mission_event,
    metric_sums,
    observations,
    parse_event,
    sse_events,
)
from sim.run_record import MissionRecord

VEH = "6f1c1f59-8d8c-4a8e-9a57-1f0a3c1a2b01"


def _ev(at: float, event: str, *, kind: str = "vehicle", to: str | None = None) -> SeenEvent:
    return SeenEvent(at, kind, event, "m1" if kind == "mission" else None, VEH, to, {})


class TestStream:
    def test_events_are_split_and_comments_skipped(self) -> None:
        lines = [": keep-alive", "", "id: 7", "event: mission.assigned", "data: {}", "", "id: 8"]
        lines += ["data: a", "data: b", ""]
        assert list(sse_events(lines)) == [("7", "{}"), ("8", "a\nb")]

    def test_an_event_parses(self) -> None:
        data = json.dumps(
            {
                "type": "vehicle",
                "event": "went_offline",
                "vehicle_id": VEH,
                "to_status": "offline",
                "details": {"reason": "connection_broken"},
                "at": "2026-12-03T10:00:00+00:00",
            }
        )
        ev = parse_event(data)
        assert ev is not None and ev.event == "went_offline" and ev.vehicle_id == VEH
        assert ev.details == {"reason": "connection_broken"}

    def test_bad_events_are_skipped(self) -> None:
        for data in ("not json", "[]", '{"type": "vehicle"}', '{"type":"x","event":"y","at":"no"}'):
            assert parse_event(data) is None

    def test_a_missions_life(self) -> None:
        rec = MissionRecord("m1", "normal", "any", created_s=0.0)
        for t, event in ((1.0, "assigned"), (2.0, "reassigned"), (3.0, "assigned")):
            apply_mission_event(rec, _ev(t, event, kind="mission"), t * 10)
        apply_mission_event(rec, _ev(4.0, "pickup_completed", kind="mission"), 40.0)
        apply_mission_event(rec, _ev(5.0, "completed", kind="mission"), 50.0)
        assert (rec.assigned_s, rec.reassignments, rec.picked_up_s) == (10.0, 1, 40.0)
        assert (rec.completed_s, rec.final_status, rec.vehicle_id) == (50.0, "completed", VEH)

    def test_metrics_are_summed_over_labels(self) -> None:
        text = (
            "# HELP fleetd_messages_rejected_total x\n"
            'fleetd_messages_rejected_total{link="vda5050",reason="json"} 3.0\n'
            'fleetd_messages_rejected_total{link="driver",reason="schema"} 2.0\n'
            'fleetd_vehicles_online{kind="robot"} 20\n'
            "fleetd_vehicles_online garbage\n"
            "other_metric 5\n"
        )
        sums = metric_sums(text)
        assert sums["fleetd_messages_rejected_total"] == 5.0
        assert sums["fleetd_vehicles_online"] == 20.0


class TestObservations:
    def test_reactions_within_the_window_only_once_each(self) -> None:
        fault = Injected("vanish", "r0001", at=100.0, wall_duration_s=10.0, note="")
        events = [
            _ev(99.0, "went_offline"),  # before: not a reaction
            _ev(101.0, "went_offline"),
            _ev(102.0, "status_changed", to="idle"),  # everyday status: not named
            _ev(103.0, "reassigned", kind="mission"),
            _ev(104.0, "went_offline"),
            _ev(139.0, "went_online"),
            _ev(200.0, "error_raised"),  # long after
        ]
        seen = observations(fault, VEH, events, [], {})
        assert seen == ["vehicle offline", "mission reassigned", "vehicle back online"]

    def test_the_runs_own_end_is_not_a_reaction(self) -> None:
        fault = Injected("fatal_error", "r0001", at=100.0, wall_duration_s=10.0, note="")
        events = [_ev(101.0, "error_raised"), _ev(120.0, "went_offline")]
        assert observations(fault, VEH, events, [], {}, until=110.0) == ["vehicle error raised"]

    def test_held_missions_and_refused_messages(self) -> None:
        fault = Injected("malformed_burst", "d001", at=100.0, wall_duration_s=0.0, note="")
        key = "fleetd_messages_rejected_total"
        scrapes = [(99.0, {key: 4.0}), (101.0, {key: 6.0}), (103.0, {key: 14.0})]
        seen = observations(fault, VEH, [], scrapes, {VEH: "vehicle_offline"})
        assert seen == [
            "waiting for operator (vehicle_offline)",
            f"messages refused (10 counted in {key})",
        ]

    def test_alerts_withdrawn_legs_and_held_missions_are_reactions(self) -> None:
        """The reactions to stuck, battery_fault (issue 15/17): an alert about the vehicle,
        its leg taken back with the reason, or its mission held."""
        fault = Injected("stuck", "r0001", at=100.0, wall_duration_s=18.0, note="")
        events = [
            SeenEvent(103.0, "alert", "raised", None, VEH, None, {"kind": "vehicle_stuck"}),
            SeenEvent(103.5, "mission", "unassigned", "m1", VEH, None, {"reason": "vehicle_stuck"}),
            SeenEvent(104.0, "mission", "held", "m2", VEH, None, {"reason": "battery_critical"}),
            SeenEvent(110.0, "alert", "cleared", None, VEH, None, {"kind": "vehicle_stuck"}),
        ]
        assert observations(fault, VEH, events, [], {}) == [
            "alert vehicle_stuck raised",
            "leg withdrawn (vehicle_stuck)",
            "mission held (battery_critical)",
        ]

    def test_rejected_fixes_are_counted_over_the_faults_window(self) -> None:
        fault = Injected("noisy_gps", "d001", at=100.0, wall_duration_s=12.0, note="")
        key = "fleetd_position_fixes_rejected_total"
        scrapes = [
            (99.0, {key: 1.0}),
            (103.0, {key: 2.0}),
            (112.0, {key: 7.0}),
            (500.0, {key: 90.0}),
        ]
        assert observations(fault, VEH, [], scrapes, {}) == [f"fixes rejected (6 counted in {key})"]

    def test_an_unknown_vehicle_sees_nothing(self) -> None:
        fault = Injected("vanish", "r0001", at=100.0, wall_duration_s=0.0, note="")
        assert observations(fault, None, [_ev(101.0, "went_offline")], [], {}) == []


class TestCommandLine:
    def test_the_flag_form_still_works(self) -> None:
        args = build_parser().parse_args(["sim", "--robots", "3", "--drivers", "1"])
        assert args.sim_command is None and args.robots == 3
        assert args.func.__module__ == "sim.cli"

    def test_run_takes_a_scenario_and_fault_switches(self) -> None:
        args = build_parser().parse_args(
            ["sim", "run", "demo", "--seed", "3", "--fault-vanish", "12", "--fault-noisy-gps", "2"]
        )
        assert (args.sim_command, args.scenario, args.seed) == ("run", "demo", 3)
        assert (args.fault_vanish, args.fault_noisy_gps, args.fault_stuck) == (12.0, 2.0, None)
        assert args.func.__module__ == "sim.run_cli"

    def test_a_negative_rate_is_refused(self, capsys: object) -> None:
        import pytest

        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args(["sim", "run", "demo", "--fault-vanish", "-1"])
        assert exc.value.code == 2
