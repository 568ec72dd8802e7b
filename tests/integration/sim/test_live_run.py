"""``fleetd sim run`` end to end: a whole daemon, vehicle host processes over the broker,
missions through the control API, and the run's record read back.

Nothing here is a double: the daemon runs with its dispatch engine, the vehicles are
:mod:`sim.host` processes speaking VDA 5050 and the driver protocol over the shared
Mosquitto (under this test's own topic namespace), missions are created with a real
operator token, and what fleetd did is read from its event stream and metrics.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from dispatcher.config import Settings
from dispatcher.facility_layouts import load_facility
from sim.driver import DriverSpec
from sim.fleet import start_nodes
from sim.live import LiveOptions, run_live, write_record
from sim.report import load_report, write_report
from sim.report.folder import FILES
from sim.report.plots import PLOTS
from sim.robot import RobotSpec
from sim.run_record import RunRecord
from sim.scenario import FaultRates, Scenario
from sim.schedule import scenario_faults
from tests.conftest import daemon_settings, running_daemon
from tests.integration.operator_tokens import operator_token


def _settings(pg_dsn: str, mqtt_namespace: str, redis_prefix: str, **more: Any) -> Settings:
    # The simulated phones report every 2 s (wall) when nothing changes: the tests' usual
    # 1.5 s heartbeat timeout would turn every idle driver offline and back all run long.
    fleet = {"heartbeat_timeout_s": 5.0, **more.pop("fleet", {})}
    return daemon_settings(
        pg_dsn,
        mqtt_namespace,
        redis_prefix,
        fleet=fleet,
        **more,
        dispatch={
            "tick_s": 0.5,
            "debounce_s": 0.05,
            "offer_timeout_s": 3.0,
            "service_s": 1,
            # Wall seconds: a stuck fault lasts 180 simulated s, 18 wall s at 10x.
            "stuck_after_s": 3.0,
            "stuck_retry_s": 10.0,
        },
        planner={"time_limit_s": 0.3},
    )


async def _run(
    settings: Settings,
    scenario: Scenario,
    tmp_path: Path,
    *,
    stop_when_done: bool,
    stop_after_s: float | None = None,
    after: list[dict[str, Any]] | None = None,
) -> RunRecord:
    """Run ``scenario`` against a daemon of ``settings``. ``stop_after_s``: set the stop
    event (what Ctrl-C and SIGTERM do in ``fleetd sim run``) this many wall seconds in;
    ``after``: filled with the vehicles as fleetd lists them once the run has returned."""
    facility = settings.default_facility
    doc = load_facility(facility, None).documents[0]
    nodes = start_nodes(doc, facility.maps[0].map_id)
    async with running_daemon(settings):
        token = await operator_token(settings, "sim")
        options = LiveOptions(
            report_dir=tmp_path,
            token=token,
            api_url=settings.api.base_url,
            progress=False,
            stop_when_done=stop_when_done,
        )
        stop = asyncio.Event()
        if stop_after_s is not None:
            asyncio.get_running_loop().call_later(stop_after_s, stop.set)
        record = await run_live(scenario, settings, options, nodes, stop)
        if after is not None:
            async with httpx.AsyncClient(
                base_url=settings.api.base_url, headers={"Authorization": f"Bearer {token}"}
            ) as client:
                response = await client.get("/v1/vehicles", params={"limit": 500})
                after.extend(response.json()["items"])
        return record


#: Top speeds of the simulated vehicles (sim.robot, sim.driver), simulated m/s.
_FASTEST_MPS = max(RobotSpec("m", "s").speed_mps, DriverSpec("d", [(0.0, 0.0)]).speed_mps)


def _assert_distances_measured(record: RunRecord) -> None:
    """Each completed mission's empty and loaded metres come from the vehicles' odometers:
    measured (not None), a loaded drive between two different places, and no more than
    the fastest vehicle could drive in the time (1 s of slack for the marks' timing)."""
    for m in record.missions:
        assert m.empty_distance_m is not None and m.loaded_distance_m is not None, m
        assert m.picked_up_s is not None and m.completed_s is not None and m.assigned_s
        assert m.loaded_distance_m > 0, m
        assert m.loaded_distance_m <= _FASTEST_MPS * (m.completed_s - m.picked_up_s + 1.0), m
        assert 0 <= m.empty_distance_m <= _FASTEST_MPS * (m.picked_up_s - m.assigned_s + 1.0)
    # Not every vehicle stands on its next pickup: some drove there.
    assert sum(m.empty_distance_m or 0.0 for m in record.missions) > 0
    assert record.notes["distances_measured_missions"] == len(record.missions)


class TestLiveRun:
    async def test_a_short_scenario_completes_its_missions(
        self, pg_dsn: str, mqtt_namespace: str, redis_prefix: str, tmp_path: Path
    ) -> None:
        """20 vehicles at 20x, missions in the first simulated 10 minutes only: each is
        created through the API, dispatched, driven and completed; the record says so."""
        settings = _settings(pg_dsn, mqtt_namespace, redis_prefix)
        scenario = Scenario.model_validate(
            {
                "name": "short",
                "seed": 3,
                "duration_s": 2400.0,  # 2 wall minutes at most; it stops when all are done
                "time_scale": 20.0,
                "fleet": {"robots": 14, "drivers": 6, "battery_start": [70.0, 100.0]},
                "workload": {
                    "missions_per_hour": 60.0,
                    "start_hour": 0.0,
                    "profile": [[0.0, 1.0], [0.17, 0.0]],
                    "vehicle_kind_mix": {"any": 0.5, "robot": 0.25, "driver": 0.25},
                },
            }
        )
        record = await _run(settings, scenario, tmp_path, stop_when_done=True)

        assert len(record.missions) >= 5
        for m in record.missions:
            assert m.final_status == "completed", m
            assert m.assigned_s is not None and m.picked_up_s is not None
            assert m.completed_s is not None
            assert m.created_s <= m.assigned_s <= m.picked_up_s <= m.completed_s
            assert m.vehicle_id is not None and m.vehicle_id[0] in "rd"  # r0001, d001
        assert record.mode == "live" and record.vehicles == 20
        assert record.notes["fleetd_vehicles_online_max"] == 20
        # The interval figures are there (their values are measured, not asserted).
        assert int(record.notes["state_reports_periodic"]) > 0
        assert "state_interval_jitter_sd_ms" in record.notes
        assert record.samples and record.messages_sent > 0
        assert str(record.notes["summary"]).startswith(f"missions: {len(record.missions)} created")
        written = json.loads(write_record(record, tmp_path).read_text())
        assert len(written["missions"]) == len(record.missions)
        _assert_distances_measured(record)
        # The report folder a live run writes: KPI table (Markdown, JSON) and the plots.
        write_report(record, tmp_path / "report")
        for name in (*FILES, *PLOTS):
            assert (tmp_path / "report" / name).stat().st_size > 0, name
        kpis = load_report(tmp_path / "report").kpis
        assert kpis["missions_served"] == len(record.missions)
        assert kpis["empty_distance_per_mission_m"] is not None
        assert kpis["loaded_distance_per_mission_m"] > 0

    async def test_each_fault_kind_is_injected_and_recorded(
        self, pg_dsn: str, mqtt_namespace: str, redis_prefix: str, tmp_path: Path
    ) -> None:
        """Every kind of fault, on a small fleet with work to do: each is recorded with
        what fleetd did about it, seen in its events and metrics. The fleet is judged at
        the scenario's pace: a driver's plausible speed is 15 m/s times the time scale."""
        settings = _settings(
            pg_dsn, mqtt_namespace, redis_prefix, fleet={"driver_max_speed_mps": 150.0}
        )
        scenario = Scenario.model_validate(
            {
                "name": "faults",
                "seed": 2,  # every kind drawn in the first 400 simulated s
                "duration_s": 600.0,
                "time_scale": 10.0,
                "fleet": {"robots": 6, "drivers": 6},
                "workload": {
                    "missions_per_hour": 240.0,
                    "vehicle_kind_mix": {"robot": 0.4, "driver": 0.6},
                },
                # A silent driver needs an offer to accept before its window lapses, and a
                # stuck robot an order for the watchdog to judge (an idle one is left
                # alone): more of them make it near certain that one does within the run.
                "faults": {
                    **dict.fromkeys(FaultRates.model_fields, 20.0),
                    "silent_driver": 40.0,
                    "stuck": 40.0,
                },
            }
        )
        assert {f.kind for f in scenario_faults(scenario)} == set(FaultRates.model_fields)
        record = await _run(settings, scenario, tmp_path, stop_when_done=False)

        by_kind: dict[str, list[Any]] = {}
        for fault in record.faults:
            by_kind.setdefault(fault.kind, []).append(fault)
        # Faults that fleetd reacts to, and the reaction its events or metrics show.
        expected: dict[str, tuple[str, ...]] = {
            "vanish": ("vehicle offline",),
            "reconnect": ("vehicle offline",),
            "fatal_error": ("vehicle error raised",),
            "silent_driver": ("vehicle offline",),
            "malformed_burst": ("messages refused",),
            # The progress watchdog: the alert, and the leg of a robot with an order taken
            # back (or its mission held with the rider on board).
            "stuck": ("alert vehicle_stuck raised", "leg withdrawn (vehicle_stuck)"),
            # The phone's scattered fixes are not used; sustained, they raise an alert.
            "noisy_gps": ("fixes rejected", "alert position_unreliable raised"),
            # 4 % is below the critical level: the alert (and a leg given up, if it had one).
            "battery_fault": ("alert battery_critical raised",),
        }
        for kind, reactions in expected.items():
            done = [f for f in by_kind.get(kind, []) if not f.injected.startswith("skipped")]
            seen = [o for f in done for o in f.observed]
            assert any(o.startswith(reactions) for o in seen), (
                kind,
                [(f.vehicle_id, f.t_s, f.injected, f.observed) for f in by_kind.get(kind, [])],
            )

    async def test_a_stop_request_ends_the_run_cleanly(
        self, pg_dsn: str, mqtt_namespace: str, redis_prefix: str, tmp_path: Path
    ) -> None:
        """Ctrl-C or SIGTERM (the stop event they set) well before the scenario's end: the
        run stops in order, every vehicle says goodbye (fleetd sees them all offline, none
        lost), and the record covers what happened up to the stop."""
        settings = _settings(pg_dsn, mqtt_namespace, redis_prefix)
        scenario = Scenario.model_validate(
            {
                "name": "stopped",
                "seed": 5,
                "duration_s": 36000.0,  # an hour of wall time at 10x: stopped long before
                "time_scale": 10.0,
                "fleet": {"robots": 6, "drivers": 4},
                "workload": {"missions_per_hour": 120.0, "vehicle_kind_mix": {"any": 1.0}},
            }
        )
        after: list[dict[str, Any]] = []
        async with asyncio.timeout(180):  # a hang guard, not a speed target
            record = await _run(
                settings, scenario, tmp_path, stop_when_done=False, stop_after_s=25.0, after=after
            )
        assert 0 < record.duration_s < scenario.duration_s
        assert record.missions, "missions were created before the stop"
        assert record.notes["vehicles_online_at_end"] == 0
        assert record.notes["fleetd_vehicles_online_max"] == 10
        assert len(after) == 10 and not any(v["online"] for v in after), after
        # Each mission was read back: final or still open, never made up.
        statuses = {m.final_status for m in record.missions}
        assert statuses <= {"completed", "failed", "cancelled", None}
