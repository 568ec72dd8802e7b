"""Layout benchmark: loading a LIF file and computing travel-time matrices on it.

Prints, as a Markdown table: the time to load and validate the shipped hospital campus,
to compile its route graph, and to compute duration + distance matrices for the node sets
a plan needs (cold: Dijkstra from every source; warm: every row from the cache), on the
campus and on a generated square grid of one-way-and-two-way aisles (N x N nodes).
Not a test: figures, not assertions. Run: ``.venv/bin/python benchmarks/layout_matrices.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from geo.layout import CompiledGraph, VehicleProfile, build_edge_table, load_lif, parse_lif
from geo.layout.model import LifDocument

VT = "bench"


def _timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1000, out


def grid(n: int) -> LifDocument:
    """An n x n grid, 5 m apart, rows one-way alternating east/west, columns two-way."""
    nodes = [
        {
            "nodeId": f"{i}.{j}",
            "nodePosition": {"x": 5.0 * i, "y": 5.0 * j},
            "vehicleTypeNodeProperties": [{"vehicleTypeId": VT}],
        }
        for i in range(n)
        for j in range(n)
    ]
    edges = []

    def add(a: str, b: str) -> None:
        edges.append(
            {
                "edgeId": f"{a}>{b}",
                "startNodeId": a,
                "endNodeId": b,
                "vehicleTypeEdgeProperties": [{"vehicleTypeId": VT, "rotationAllowed": True}],
            }
        )

    for j in range(n):
        for i in range(n - 1):
            a, b = f"{i}.{j}", f"{i + 1}.{j}"
            add(a, b) if j % 2 == 0 else add(b, a)
    for i in range(n):
        for j in range(n - 1):
            add(f"{i}.{j}", f"{i}.{j + 1}")
            add(f"{i}.{j + 1}", f"{i}.{j}")
    doc = {
        "metaInformation": {
            "projectIdentification": "grid",
            "creator": "bench",
            "exportTimestamp": "2026-01-01T00:00:00Z",
            "lifVersion": "1.0.0",
        },
        "layouts": [{"layoutId": "g", "layoutVersion": "1", "nodes": nodes, "edges": edges}],
    }
    return parse_lif(json.dumps(doc))


def row(name: str, doc: LifDocument, profile: VehicleProfile, k: int) -> str:
    compile_ms, graph = _timed(lambda: CompiledGraph(build_edge_table(doc, profile)), 1)
    ids = random.Random(1).sample(list(graph.edges.node_ids), k)
    cold_ms, _ = _timed(lambda: CompiledGraph(graph.edges).matrices(ids), 3)
    graph.matrices(ids)
    warm_ms, _ = _timed(lambda: graph.matrices(ids), 3)
    n, e = len(graph.edges.node_ids), len(graph.edges.edge_ids)
    return f"| {name} | {n} | {e} | {k} | {compile_ms:.1f} | {cold_ms:.1f} | {warm_ms:.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--grid", type=int, nargs="+", default=[50, 100])
    args = parser.parse_args()
    path = Path(str(resources.files("geo").joinpath("maps", "hospital-campus.lif.json")))
    load_ms, campus = _timed(lambda: load_lif(path), 3)
    print(f"load + validate hospital-campus.lif.json: {load_ms:.1f} ms")
    print()
    print("| graph | nodes | edges | matrix nodes | compile ms | cold matrix ms | warm ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    robot = VehicleProfile("simbot.wheelchair", 1.2)
    print(row("hospital campus", campus, robot, 40))
    print(row("hospital campus", campus, robot, len(campus.nodes)))
    for n in args.grid:
        doc = grid(n)
        for k in (50, 200):
            print(row(f"grid {n}x{n}", doc, VehicleProfile(VT, 1.0), k))


if __name__ == "__main__":
    main()
