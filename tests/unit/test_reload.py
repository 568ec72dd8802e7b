"""SIGHUP reload planning: which changed keys apply live, which need a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.config import ConfigError, Settings, load_settings
from dispatcher.reload import changed_keys, plan_reload


def _settings(**sections: object) -> Settings:
    return Settings(**sections)  # type: ignore[arg-type]


def test_nothing_changed() -> None:
    plan = plan_reload(Settings(), Settings())
    assert not plan.changed
    assert plan.settings == Settings()


def test_live_keys_are_applied_the_rest_named_and_kept() -> None:
    running = _settings(api={"port": 8080}, alerts={"low_battery_pct": 20})
    fresh = _settings(
        api={"port": 9090},
        alerts={"low_battery_pct": 30, "mission_wait_s": 60},
        daemon={"log_level": "debug"},
        database={"dsn": "postgresql://other@db.example:5432/fleetd"},
    )
    plan = plan_reload(running, fresh)
    assert plan.applied == ("alerts.low_battery_pct", "alerts.mission_wait_s", "daemon.log_level")
    assert plan.needs_restart == ("api.port", "database.dsn")
    # Applied:
    assert plan.settings.alerts.low_battery_pct == 30
    assert plan.settings.alerts.mission_wait_s == 60
    assert plan.settings.daemon.log_level == "debug"
    # Kept as running until a restart:
    assert plan.settings.api.port == 8080
    assert plan.settings.database.dsn == running.database.dsn


def test_a_changed_secret_is_named_not_shown() -> None:
    keys = changed_keys(_settings(mqtt={"password": "old"}), _settings(mqtt={"password": "new"}))
    assert keys == ["mqtt.password"]


def test_facilities_change_needs_a_restart() -> None:
    fresh = _settings(facilities=[{"key": "north", "name": "North", "maps": [], "places": []}])
    plan = plan_reload(Settings(), fresh)
    assert plan.needs_restart == ("facilities",)
    assert plan.settings.facilities == []


def test_a_bad_file_is_refused_before_any_plan(tmp_path: Path) -> None:
    path = tmp_path / "fleetd.toml"
    path.write_text("[alerts]\nlow_battery_pct = 500\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    assert exc.value.problems[0][0] == "alerts.low_battery_pct"
