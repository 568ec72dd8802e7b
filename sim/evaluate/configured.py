"""Evaluation options from fleetd's configuration: the daemon's own dispatch and planner
settings, plus the deterministic stop the offline run needs."""

from __future__ import annotations

from dataclasses import replace

from dispatcher.config import Settings
from dispatcher.dispatch.problem import Speeds
from dispatcher.dispatch.service import charge_policy, planner_options
from sim.evaluate.engine import DispatchRules, EvaluateOptions


def rules_from_settings(settings: Settings) -> DispatchRules:
    """``[dispatch]`` as the engine reads it (dispatcher.dispatch.service)."""
    d = settings.dispatch
    return DispatchRules(
        tick_s=d.tick_s,
        debounce_s=d.debounce_s,
        max_delay_s=d.max_delay_s,
        service_s=d.service_s,
        quick_time_limit_s=d.quick_time_limit_s,
        speeds=Speeds(robot_mps=d.robot_speed_mps),
        charge=charge_policy(settings),
        release_margin_s=d.release_margin_s,
        plan_ahead_s=d.plan_ahead_s,
    )


def options_from_settings(
    settings: Settings, strategy: str, solution_limit: int | None, search_cap_s: float
) -> EvaluateOptions:
    """The daemon's planner options with a deterministic stop of ``solution_limit``
    solutions per search (None: the daemon's wall-clock limit, not reproducible) and
    ``search_cap_s`` as each search's time cap."""
    planner = planner_options(settings)
    if solution_limit is not None:
        planner = replace(planner, solution_limit=solution_limit, time_limit_s=search_cap_s)
    return EvaluateOptions(strategy=strategy, planner=planner, rules=rules_from_settings(settings))
