"""Route graphs compiled once per (layout version, vehicle profile, zone set) and reused."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from geo.layout.graph import VehicleProfile, build_edge_table
from geo.layout.model import LifDocument
from geo.layout.routing import CompiledGraph, Matrices, Route
from geo.layout.zones import NO_ZONES, ZoneSet, apply_zones


@dataclass(frozen=True, slots=True)
class CacheInfo:
    hits: int
    misses: int
    size: int


class RouteGraphs:
    """A bounded LRU of :class:`CompiledGraph` (each with its own per-source row cache).

    The key is the document's :attr:`LifDocument.version` (every layoutId@layoutVersion
    and a digest of the content), the vehicle profile and the zone set's key, so a new
    layout version or a changed zone compiles a new graph and the old one ages out.
    """

    def __init__(self, max_graphs: int = 32) -> None:
        self._graphs: OrderedDict[tuple[Any, ...], CompiledGraph] = OrderedDict()
        self._max = max_graphs
        self._hits = 0
        self._misses = 0
        self._lock = threading.Lock()

    def graph(
        self, doc: LifDocument, profile: VehicleProfile, zones: ZoneSet = NO_ZONES
    ) -> CompiledGraph:
        """The compiled route graph for ``profile`` on ``doc`` with ``zones`` applied."""
        key = (doc.version, profile, zones.key)
        with self._lock:
            found = self._graphs.get(key)
            if found is not None:
                self._hits += 1
                self._graphs.move_to_end(key)
                return found
            self._misses += 1
        compiled = CompiledGraph(apply_zones(build_edge_table(doc, profile), zones))
        with self._lock:
            self._graphs[key] = compiled
            while len(self._graphs) > self._max:
                self._graphs.popitem(last=False)
        return compiled

    def matrices(
        self,
        doc: LifDocument,
        profile: VehicleProfile,
        node_ids: tuple[str, ...] | list[str],
        zones: ZoneSet = NO_ZONES,
    ) -> Matrices:
        """Duration and distance matrices between ``node_ids`` for one vehicle profile."""
        return self.graph(doc, profile, zones).matrices(node_ids)

    def route(
        self,
        doc: LifDocument,
        profile: VehicleProfile,
        start: str,
        end: str,
        zones: ZoneSet = NO_ZONES,
    ) -> Route | None:
        """The fastest node/edge sequence from ``start`` to ``end`` (None: unreachable)."""
        return self.graph(doc, profile, zones).route(start, end)

    def cache_info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._graphs))
