"""The planner's entry point: solve a :class:`Problem` with a named strategy."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from dispatcher.planner.greedy import greedy
from dispatcher.planner.model import Plan, Problem
from dispatcher.planner.optimise import optimise
from dispatcher.planner.options import PlannerOptions

Candidates = Mapping[str, Sequence[str]]


def _greedy(
    problem: Problem, options: PlannerOptions, previous: Plan | None, given: Candidates | None
) -> Plan:
    del previous  # greedy keeps no memory between plans
    return greedy(problem, options, given)


def _optimise(
    problem: Problem, options: PlannerOptions, previous: Plan | None, given: Candidates | None
) -> Plan:
    return optimise(problem, options, previous, given)


STRATEGIES: dict[str, Callable[[Problem, PlannerOptions, Plan | None, Candidates | None], Plan]] = {
    "optimise": _optimise,
    "greedy": _greedy,
}


class UnknownStrategyError(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown planner strategy {name!r} (known: {', '.join(STRATEGIES)})")
        self.name = name


def solve(
    problem: Problem,
    strategy: str = "optimise",
    options: PlannerOptions | None = None,
    previous: Plan | None = None,
    candidates: Candidates | None = None,
) -> Plan:
    """Plan ``problem``: per vehicle its timed stops, plus every request not served and why.

    ``previous``: the last plan, when re-planning (warm start; assignments only change for
    more than ``options.improvement_threshold``). ``candidates``: optional per-request
    vehicle ids found elsewhere (e.g. nearest by Redis GEO), intersected with eligibility.
    Vehicles' ``start``/``ready_time`` are where and when their started legs end: started
    legs are not part of the problem, so they stay fixed.
    """
    if strategy not in STRATEGIES:
        raise UnknownStrategyError(strategy)
    return STRATEGIES[strategy](problem, options or PlannerOptions(), previous, candidates)
