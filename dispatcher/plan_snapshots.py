"""Recording planning problems as VROOM JSON files, to replay with ``fleetd plan solve``.

The I/O half next to the pure planner: one file per snapshot, written atomically (a
temporary file in the same directory, fsync, rename), named so that names sort by time;
the oldest files are deleted when the directory holds more than ``max_files`` snapshots
or ``max_bytes`` in total. The live dispatch loop that calls it arrives with the dispatch
issue; ``[planner] snapshot_dir`` switches it on.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from dispatcher.planner.model import Problem
from dispatcher.planner.vroom_solution import write_problem

SUFFIX = ".vroom.json"


def record_snapshot(
    problem: Problem,
    directory: Path,
    max_files: int,
    max_bytes: int,
    label: str = "plan",
    now_ns: int | None = None,
) -> Path:
    """Write ``problem`` to ``directory`` in VROOM's problem format; return its path.

    Blocking file I/O: call it from a worker thread (``asyncio.to_thread``), never on the
    event loop.
    """
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.time_ns() if now_ns is None else now_ns
    final = directory / f"{stamp:020d}-{label}{SUFFIX}"
    payload = json.dumps(write_problem(problem), separators=(",", ":")).encode()
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    prune_snapshots(directory, max_files, max_bytes)
    return final


def prune_snapshots(directory: Path, max_files: int, max_bytes: int) -> list[Path]:
    """Delete the oldest snapshots beyond ``max_files`` files or ``max_bytes`` in total
    (the newest is always kept); return what was deleted."""
    files = sorted(p for p in directory.glob(f"*{SUFFIX}") if not p.name.startswith("."))
    sizes = [p.stat().st_size for p in files]
    total = sum(sizes)
    deleted: list[Path] = []
    while len(files) > 1 and (len(files) > max_files or total > max_bytes):
        oldest = files.pop(0)
        total -= sizes.pop(0)
        oldest.unlink(missing_ok=True)
        deleted.append(oldest)
    return deleted
