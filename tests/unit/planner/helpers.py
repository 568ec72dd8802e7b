"""Small planning worlds for the planner's tests, and an independent feasibility checker.

The checker re-derives every constraint from the problem itself (it shares no code with
the planner's own scheduling), so a plan the solver believes feasible is checked again.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from dispatcher.planner import Plan, Problem, Profile, StopKind


def line_profile(n: int, seconds_per_step: int = 10) -> Profile:
    """Locations 0..n-1 on a line; travel time and cost are the distance times a step."""
    idx = np.arange(n)
    dur = (np.abs(idx[:, None] - idx[None, :]) * seconds_per_step).astype(np.int64)
    return Profile(durations=dur, costs=dur.copy(), distances=dur.copy())


def _in_windows(t: int, windows: Iterable[tuple[int, int]]) -> bool:
    return any(a <= t <= b for a, b in windows)


def check_feasible(problem: Problem, plan: Plan) -> None:
    """Assert that ``plan`` obeys every constraint of ``problem`` and accounts for every
    request exactly once."""
    requests = {r.id: r for r in problem.requests}
    vehicles = {v.id: v for v in problem.vehicles}
    served: list[str] = []
    for route in plan.routes:
        veh = vehicles[route.vehicle_id]
        prof = problem.profiles[veh.profile]
        carried = [r for r in problem.requests if r.onboard_vehicle == veh.id]
        load = np.zeros(len(veh.capacity), dtype=np.int64)
        for r in carried:
            load += np.asarray(r.demand[: len(veh.capacity)])
        picked = {r.id for r in carried}
        dropped: set[str] = set()
        t, here, travelled = veh.ready_time, veh.start, 0
        for stop in route.stops:
            req = requests[stop.request_id]
            assert req.required_capabilities <= veh.capabilities, (req.id, veh.id)
            assert req.required_kind in (None, veh.kind), (req.id, veh.id)
            if here is not None:
                t += int(prof.durations[here, stop.location])
                travelled += int(prof.distance_matrix()[here, stop.location])
            assert stop.arrival >= t, ("arrives too early", stop)
            assert stop.start >= stop.arrival
            pickup = stop.kind is StopKind.PICKUP
            assert stop.location == (req.pickup if pickup else req.dropoff)
            windows = req.pickup_windows if pickup else req.dropoff_windows
            assert _in_windows(stop.start, windows), ("outside window", stop, windows)
            if pickup:
                assert req.id not in picked and req.onboard_vehicle is None
                picked.add(req.id)
                load += np.asarray(req.demand[: len(veh.capacity)])
                served.append(req.id)
            else:
                assert req.id in picked and req.id not in dropped, ("drop before pick", req.id)
                dropped.add(req.id)
                load -= np.asarray(req.demand[: len(veh.capacity)])
                if req.onboard_vehicle is not None:
                    served.append(req.id)
            assert (load <= np.asarray(veh.capacity)).all(), ("over capacity", stop)
            assert (load >= 0).all()
            t = stop.start + (req.pickup_service if pickup else req.dropoff_service)
            here = stop.location
        assert picked == dropped, ("picked up, never dropped", picked - dropped)
        if veh.end is not None and here is not None:
            t += int(prof.durations[here, veh.end])
            travelled += int(prof.distance_matrix()[here, veh.end])
        assert t <= veh.available_until, ("vehicle late", veh.id)
        if veh.range_m is not None:
            assert travelled <= veh.range_m - veh.reserve_m, ("below battery reserve", veh.id)
    unserved = [u.request_id for u in plan.unserved]
    assert len(served) == len(set(served)), "a request served twice"
    assert sorted(served + unserved) == sorted(requests), "a request lost or duplicated"
