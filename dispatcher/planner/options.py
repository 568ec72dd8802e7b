"""Tuning knobs of the planner, with the defaults the daemon uses."""

from __future__ import annotations

from dataclasses import dataclass, field

from dispatcher.planner.model import Priority


def _default_weights() -> dict[int, int]:
    return {Priority.LOW: 1, Priority.NORMAL: 2, Priority.HIGH: 4, Priority.URGENT: 8}


@dataclass(frozen=True, slots=True)
class PlannerOptions:
    """How to solve.

    ``max_candidates``: when the problem has more than ``prune_above`` vehicles,
    keep only the ``max_candidates`` soonest at its pickup (``None``: never prune).
    ``improvement_threshold``: when re-planning, a plan that moves requests between
    vehicles is only taken if it lowers the objective by more than this fraction.
    ``waiting_weights``: per priority level, the cost of one second of passenger waiting
    (in cost units) under the live objective; a level's weight applies from its value up.
    ``unserved_wait_s``: under the live objective, leaving a request unserved costs as much
    as this many seconds of its priority's waiting (on top of outweighing any travel).
    ``use_vroom``: build the first solution with VROOM (pyvroom) when the problem fits
    VROOM's model, then improve it with OR-Tools guided local search; VROOM gets
    ``vroom_share`` of the limit, or all of it when the rest would be under
    ``min_polish_s``.
    """

    time_limit_s: float = 1.0
    max_candidates: int | None = 8
    prune_above: int = 50
    improvement_threshold: float = 0.05
    waiting_weights: dict[int, int] = field(default_factory=_default_weights)
    unserved_wait_s: int = 4 * 3600
    use_vroom: bool = True
    vroom_share: float = 0.9
    vroom_threads: int = 2
    min_polish_s: float = 0.5
    #: VROOM's exploration level (1-5) for the seed: 5 under VROOM's own objective (its
    #: full search, so fleetd starts where VROOM ends); 1 under the live objective, where
    #: VROOM's cost-optimal routes are only a starting point and time matters more.
    vroom_level_cost: int = 5
    vroom_level_waiting: int = 1
    #: Cut the problem into parts when VROOM's construction heuristics (which its timeout
    #: does not bound) would overrun the limit; ``False``: VROOM's own behaviour, better
    #: routes on 200+ shipments at short limits but many times the limit
    #: (docs/dispatch.md). Either way VROOM runs only as many of the level's searches as
    #: settle in the limit, measured on the run (``vroom_seed._timed_solve``).
    vroom_fit_level: bool = True
    #: A deterministic stop (the offline evaluation's, ``fleetd sim evaluate``): when set,
    #: OR-Tools' search ends after this many solutions, no VROOM seed is used (VROOM's
    #: routes for one input differ from run to run) and new requests are inserted without
    #: a deadline, so the same problem always gives the same plan whatever the machine's
    #: load.
    #: ``time_limit_s`` then only caps each search (reached, the plan depends on timing
    #: again). ``None`` (the daemon): every stage stops on the wall clock.
    solution_limit: int | None = None

    @property
    def deterministic(self) -> bool:
        return self.solution_limit is not None
