"""The full optimisation runs in a worker process, not a thread of the daemon (edge).

Why a process: the planner is Python around OR-Tools and VROOM. Model building, seeding,
the greedy construction and reading the solution are Python code that holds the GIL, so
a solve in a thread of the daemon takes the event loop's core for most of its time limit:
MQTT ingest and the API stall while a big problem is solved (``benchmarks/dispatch_latency.py``
measures it). One spawned worker process (``concurrent.futures``) receives the pickled
problem and returns the plan. The quick insertion of a new mission (small: its own
candidates only) stays in a thread, so it never queues behind a full optimisation.

The worker is started with the daemon's dispatch service and shut down with it; a worker
that died is replaced on the next solve, and that one solve runs in a thread. It runs at a
lower CPU priority (nice +10) than the daemon: on a busy machine its imports at start and
its searches give way to the event loop. It ends by itself when the daemon is gone (a
``kill -9`` leaves no chance to stop it).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import structlog

from dispatcher.dispatch.planning import SolveJob, run_job
from dispatcher.planner import Plan

log = structlog.get_logger(__name__)


#: The worker's nice value: below the daemon, so when the cores are short the event loop
#: (ingest, API, the quick insertion) goes first and the optimisation takes what is left.
WORKER_NICENESS = 10


#: How often the worker checks that the daemon that started it is still there.
PARENT_CHECK_S = 1.0


def _exit_with_parent(parent: int) -> None:
    """Leave when the daemon is gone (a kill -9 gives it no chance to stop the worker):
    an orphaned worker would otherwise keep its memory, and maybe a solve, forever."""
    while True:
        time.sleep(PARENT_CHECK_S)
        if os.getppid() != parent:
            os._exit(0)


def _start_worker() -> None:
    """Worker initializer: run behind the daemon for CPU, and end with the daemon."""
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)
    threading.Thread(
        target=_exit_with_parent, args=(os.getppid(),), name="parent-watch", daemon=True
    ).start()


def _ready() -> bool:
    """Run once in a fresh worker: its imports (OR-Tools, VROOM) happen before the first
    real solve rather than during it."""
    return True


class SolverProcess:
    """One worker process for full optimisations."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self.restarts = 0

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
            )
        return self._pool

    async def start(self) -> None:
        """Start the worker and wait until it has imported the planner."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor(), _ready)

    async def solve(self, job: SolveJob) -> Plan:
        """:func:`~dispatcher.dispatch.planning.run_job` in the worker process (a
        :data:`~dispatcher.dispatch.planning.SolveRunner`)."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), run_job, job)
        except BrokenProcessPool:
            self.restarts += 1
            log.error("dispatch.solver_process_died", restarts=self.restarts)
            self.close()
            return await asyncio.to_thread(run_job, job)

    def close(self) -> None:
        """Stop the worker (a solve in progress is abandoned)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
