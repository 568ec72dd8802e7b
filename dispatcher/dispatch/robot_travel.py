"""The robots' travel times for the planner, along each facility's route graph.

:class:`LayoutTravel` answers :class:`~dispatcher.dispatch.problem.RobotRoutes` from the
facilities' LIF layouts for the robots' vehicle type: duration and distance matrices from
``scipy.sparse.csgraph`` (geo/layout), the compiled graph cached per layout version and
vehicle profile and its rows per source node (:class:`geo.layout.cache.RouteGraphs`), so
a re-plan over the same places costs array look-ups. Called from the planner's worker
thread (the graph caches are thread-safe).

The operators' no-go and slow zones (:class:`dispatcher.route_zones.RouteZones`) apply
here as they do to the orders: the graph the matrices come from is the zone-adjusted one,
compiled once per (layout version, zone set) and reused until the zones change (a reload
at start, every 30 s, and right after ``POST``/``DELETE /v1/zones``), so the planner never
assumes a way the robot's order cannot take.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from dispatcher.config import Settings
from dispatcher.dispatch.problem import FloatMatrix, NodeKey
from dispatcher.dispatch.robot_channel import FacilityOrderLayouts, LayoutLookup
from dispatcher.facility_layouts import FacilityLayouts
from geo.layout.routing import CompiledGraph
from geo.layout.zones import ZoneSet


class LayoutTravel:
    """:class:`~dispatcher.dispatch.problem.RobotRoutes` over the facilities' layouts."""

    def __init__(self, layouts: LayoutLookup) -> None:
        self._layouts = layouts

    def matrices(self, nodes: Sequence[NodeKey | None]) -> tuple[FloatMatrix, FloatMatrix]:
        n = len(nodes)
        durations = np.full((n, n), np.nan)
        distances = np.full((n, n), np.nan)
        groups: dict[int, tuple[CompiledGraph, list[int]]] = {}
        for i, key in enumerate(nodes):
            if key is None:
                continue
            layout = self._layouts(key[0], key[1])
            graph = layout.routes if layout is not None else None
            if isinstance(graph, CompiledGraph):
                groups.setdefault(id(graph), (graph, []))[1].append(i)
        for graph, idx in groups.values():
            # Many points share a node (robots parked together, missions between the same
            # places): the graph is asked for each node once, the result spread by index.
            unique: dict[str, int] = {}
            inverse = np.array(
                [unique.setdefault(nodes[i][1], len(unique)) for i in idx],  # type: ignore[index]
                dtype=np.int64,
            )
            m = graph.matrices(list(unique))
            rows = np.asarray(idx, dtype=np.int64)
            durations[np.ix_(rows, rows)] = m.durations[np.ix_(inverse, inverse)]
            distances[np.ix_(rows, rows)] = m.distances[np.ix_(inverse, inverse)]
        return durations, distances


def layout_travel(
    settings: Settings,
    layouts: Mapping[str, FacilityLayouts],
    zones: Callable[[uuid.UUID], ZoneSet] | None = None,
) -> LayoutTravel:
    """The daemon's robot travel: every facility's layouts at the robots' cruise speed,
    with each facility's ``zones`` applied (the same ones its robots' orders apply)."""
    by_id: dict[uuid.UUID, FacilityLayouts] = {
        f.id: layouts[f.key] for f in settings.effective_facilities if f.key in layouts
    }
    return LayoutTravel(
        FacilityOrderLayouts(by_id, max_speed_mps=settings.dispatch.robot_speed_mps, zones=zones)
    )
