"""The solver's worker process ends with the daemon, even a daemon killed with -9 (the
fault suite's kills left one orphaned worker per kill, each holding ~190 MB)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

PARENT = """
import asyncio, sys
from dispatcher.dispatch.solver_process import SolverProcess

async def main():
    solver = SolverProcess()
    await solver.start()
    print(next(iter(solver._executor()._processes)), flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_worker_exits_when_the_daemon_is_killed() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True
    ) as parent:
        try:
            assert parent.stdout is not None
            worker = int(parent.stdout.readline())
            assert _alive(worker)
            parent.send_signal(signal.SIGKILL)
            parent.wait()
            deadline = time.monotonic() + 30
            while _alive(worker) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not _alive(worker)
        finally:
            if parent.poll() is None:
                parent.kill()
