"""Shortest travel times, distances and paths on an :class:`EdgeTable`, in compiled code.

A :class:`CompiledGraph` keeps, of every set of parallel edges between two nodes, the
fastest one, as a sparse matrix; scipy.sparse.csgraph.dijkstra then runs from only the
source nodes a plan needs (``indices=``). Distances are measured along the fastest paths
(the routes the vehicles will actually drive), by a second Dijkstra on each source's
shortest-path tree, where every node has one way in. Rows are cached per source node, so
re-planning with mostly the same nodes runs Dijkstra for the new ones only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from geo.layout.errors import UnknownNodeError
from geo.layout.graph import EdgeTable

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: csgraph reads an explicit zero in a sparse matrix as "no edge"; a zero-length edge (a
#: lift between two levels drawn at the same x, y) gets this instead.
_MIN_WEIGHT = 1e-9


@dataclass(frozen=True)
class Matrices:
    """Square matrices over ``node_ids``: seconds and metres along the fastest paths.

    ``inf`` where no path exists (a one-way street the wrong way, a no-go zone).
    """

    node_ids: tuple[str, ...]
    durations: FloatArray
    distances: FloatArray


@dataclass(frozen=True)
class Route:
    """The fastest way between two nodes: the nodes and edges in order, and its totals."""

    node_ids: tuple[str, ...]
    edge_ids: tuple[str, ...]
    duration_s: float
    distance_m: float


class CompiledGraph:
    """A route graph ready for Dijkstra, with a bounded cache of per-source rows."""

    def __init__(self, edges: EdgeTable, max_rows: int = 4096) -> None:
        self.edges = edges
        self.index = dict(edges.index)
        n = len(edges.node_ids)
        time = np.maximum(edges.length / edges.speed, _MIN_WEIGHT)
        key = edges.src * max(n, 1) + edges.dst
        # Of parallel edges keep the fastest: sort by (pair, time), take each pair's first.
        order = np.lexsort((time, key))
        first = np.ones(len(order), dtype=bool)
        first[1:] = key[order][1:] != key[order][:-1]
        self._chosen = order[first]
        self._pair_keys = key[self._chosen]
        self._n = n
        self._time_csr = csr_matrix(
            (time[self._chosen], (edges.src[self._chosen], edges.dst[self._chosen])),
            shape=(n, n),
        )
        self._dist = np.maximum(edges.length[self._chosen], _MIN_WEIGHT)
        self._rows: OrderedDict[int, tuple[FloatArray, FloatArray, IntArray]] = OrderedDict()
        self._max_rows = max_rows
        self._lock = threading.Lock()

    def indices(self, node_ids: tuple[str, ...] | list[str]) -> IntArray:
        """Row numbers of ``node_ids``; :class:`UnknownNodeError` for one not in the graph."""
        try:
            return np.array([self.index[n] for n in node_ids], dtype=np.int64)
        except KeyError as exc:
            raise UnknownNodeError(
                "node is not in the route graph of this vehicle type",
                element="node",
                element_id=str(exc.args[0]),
            ) from exc

    def _solve(self, sources: IntArray) -> dict[int, tuple[FloatArray, FloatArray, IntArray]]:
        """Dijkstra from ``sources``: times, tree distances and predecessors per source."""
        times, preds = dijkstra(
            self._time_csr, directed=True, indices=sources, return_predecessors=True
        )
        times = np.atleast_2d(times)
        preds = np.atleast_2d(preds).astype(np.int64)
        dists = self._tree_distances(preds)
        dists[~np.isfinite(times)] = np.inf
        return {int(s): (times[r], dists[r], preds[r]) for r, s in enumerate(sources)}

    def _tree_distances(self, preds: IntArray) -> FloatArray:
        """Distance from each row's source to every node along its shortest-path tree.

        Pointer jumping, all sources at once: ``acc[s, v]`` is the distance from ``jump[s,
        v]`` (an ancestor of v) to v; each round doubles how far ``jump`` reaches, so
        log2(depth) rounds of array indexing finish it, with no loop over nodes or pairs.
        """
        k, n = preds.shape
        rows = np.arange(k)[:, None]
        reached = preds >= 0
        jump = np.where(reached, preds, np.arange(n)[None, :])
        acc = np.zeros((k, n), dtype=np.float64)
        keys = preds[reached] * self._n + np.nonzero(reached)[1]
        acc[reached] = self._dist[np.searchsorted(self._pair_keys, keys)]
        while True:
            nxt = jump[rows, jump]
            if np.array_equal(nxt, jump):
                return acc
            acc = acc + acc[rows, jump]
            jump = nxt

    def rows(self, sources: IntArray) -> tuple[FloatArray, FloatArray, IntArray]:
        """(times, distances, predecessors), one row per source, over all nodes."""
        with self._lock:
            missing = np.array(
                sorted({int(s) for s in sources if int(s) not in self._rows}), dtype=np.int64
            )
            fresh = self._solve(missing) if len(missing) else {}
            # Read every row before caching the new ones: a request larger than the cache
            # must not evict rows it is about to return.
            got = [fresh.get(int(s)) or self._rows[int(s)] for s in sources]
            for s in sources:
                if int(s) in self._rows:
                    self._rows.move_to_end(int(s))
            self._rows.update(fresh)
            while len(self._rows) > self._max_rows:
                self._rows.popitem(last=False)
        empty = np.zeros((0, self._n))
        return (
            np.array([g[0] for g in got]) if got else empty,
            np.array([g[1] for g in got]) if got else empty,
            np.array([g[2] for g in got], dtype=np.int64) if got else empty.astype(np.int64),
        )

    def matrices(self, node_ids: tuple[str, ...] | list[str]) -> Matrices:
        """Durations and distances between every pair of ``node_ids`` (rows: from)."""
        idx = self.indices(node_ids)
        times, dists, _ = self.rows(idx)
        return Matrices(tuple(node_ids), times[:, idx], dists[:, idx])

    def route(self, start: str, end: str) -> Route | None:
        """The fastest path from ``start`` to ``end``, or None when there is none."""
        s, e = self.indices([start, end])
        times, dists, preds = self.rows(np.array([s], dtype=np.int64))
        if not np.isfinite(times[0, e]):
            return None
        path = [int(e)]
        while path[-1] != s:
            path.append(int(preds[0, path[-1]]))
        path.reverse()
        nodes = np.array(path, dtype=np.int64)
        pos = np.searchsorted(self._pair_keys, nodes[:-1] * self._n + nodes[1:])
        return Route(
            node_ids=tuple(self.edges.node_ids[i] for i in path),
            edge_ids=tuple(self.edges.edge_ids[int(self._chosen[p])] for p in pos),
            duration_s=float(times[0, e]),
            distance_m=float(dists[0, e]),
        )
