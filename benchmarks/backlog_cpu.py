"""fleetd's CPU with a backlog of open missions: idle, and per request.

The API benchmark (``api_latency.py``) has no vehicles, so every mission it creates stays
pending: at 1,000/s the backlog reaches tens of thousands within a run. Daemon work that
grows with the backlog (the alert watch, the dispatch engine's planning) then takes CPU
from the requests on the one core they share; this script measures that work alone.

What it does:

1. starts a private fleetd (``api_latency.Fleetd``: its own database, Redis prefix, port)
   and creates one mission through the API;
2. stops it, copies that mission ``--backlog`` times in SQL (all pending), starts it again
   and lets it settle for ``--settle`` s;
3. prints fleetd's CPU over ``--idle`` s without a request (cores), then, with
   ``--requests K``, the CPU per request (ms) of K creates and K gets sent by 8 workers;
4. stops fleetd and drops its database (also on Ctrl-C).

CPU time is what it reports: unlike latency it does not depend much on other jobs of the
machine. Not a test: figures, not assertions. Run:
``.venv/bin/python benchmarks/backlog_cpu.py --backlog 20000``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import api_latency as bench
import asyncpg
import httpx

WORKERS = 8


async def _seed(dsn: str, copies: int) -> None:
    """``copies`` more pending missions, copies of the one in the database."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'missions' "
            "AND is_generated = 'NEVER' AND column_name NOT IN ('id', 'idempotency_key') "
            "ORDER BY ordinal_position"
        )
        cols = ", ".join(r["column_name"] for r in rows)
        await conn.execute(
            f"INSERT INTO missions (id, {cols}) SELECT gen_random_uuid(), {cols} "
            "FROM (SELECT * FROM missions LIMIT 1) m, generate_series(1, $1)",
            copies,
        )
        await conn.execute("ANALYZE missions")
    finally:
        await conn.close()


def _restart(fleetd: bench.Fleetd) -> None:
    assert fleetd.proc is not None
    fleetd.proc.terminate()
    fleetd.proc.wait(30)
    with fleetd.log_path.open("ab") as log_file:
        fleetd.proc = subprocess.Popen(
            [*bench.FLEETD, "run"],
            env=fleetd.env,
            cwd=bench.REPO,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    with httpx.Client(base_url=fleetd.base_url, timeout=2) as http:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if http.get("/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    raise RuntimeError(f"fleetd did not become ready:\n{fleetd.log_tail()}")


async def _per_request(
    fleetd: bench.Fleetd, headers: dict[str, str], body: dict[str, Any], kind: str, count: int
) -> tuple[float, float]:
    """(fleetd CPU ms per request, wall s) of ``count`` creates or gets."""
    assert fleetd.proc is not None
    pid = fleetd.proc.pid
    limits = httpx.Limits(max_connections=WORKERS)
    async with httpx.AsyncClient(base_url=fleetd.base_url, timeout=60, limits=limits) as c:
        page = await c.get("/v1/missions?limit=200", headers=headers)
        ids = [m["id"] for m in page.json()["items"]]
        gate = asyncio.Semaphore(WORKERS)

        async def one(i: int) -> None:
            async with gate:
                if kind == "create":
                    key = {"Idempotency-Key": uuid.uuid4().hex}
                    r = await c.post("/v1/missions", json=body, headers=headers | key)
                else:
                    r = await c.get(f"/v1/missions/{ids[i % len(ids)]}", headers=headers)
                r.raise_for_status()

        cpu0, wall0 = bench.proc_cpu_s(pid), time.monotonic()
        await asyncio.gather(*(one(i) for i in range(count)))
        return (bench.proc_cpu_s(pid) - cpu0) / count * 1000, time.monotonic() - wall0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=20_000, help="open missions")
    parser.add_argument("--settle", type=float, default=10.0, help="s after start")
    parser.add_argument("--idle", type=float, default=15.0, help="s measured without requests")
    parser.add_argument("--requests", type=int, default=0, help="creates and gets (0: none)")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="FLEETD_KEY=VALUE",
        help="extra setting for the fleetd under test, e.g. FLEETD_DISPATCH__ENABLED=false",
    )
    args = parser.parse_args()

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    fleetd = bench.Fleetd(log_level="info", extra_env=bench.parse_env(args.server_env))
    try:
        headers = {"Authorization": f"Bearer {fleetd.start(1)[0]}"}
        places = bench.place_names()
        body = {"pickup": {"place": places[0]}, "dropoff": {"place": places[1]},
                "passenger": {"ref": "bench-0001"}}  # fmt: skip
        with httpx.Client(base_url=fleetd.base_url, timeout=30) as http:
            http.post("/v1/missions", json=body, headers=headers).raise_for_status()
        asyncio.run(_seed(fleetd.env["FLEETD_DATABASE__DSN"], args.backlog))
        _restart(fleetd)
        time.sleep(args.settle)
        assert fleetd.proc is not None
        cpu0, wall0 = bench.proc_cpu_s(fleetd.proc.pid), time.monotonic()
        time.sleep(args.idle)
        idle = (bench.proc_cpu_s(fleetd.proc.pid) - cpu0) / (time.monotonic() - wall0)
        print(f"{bench.REPO.name}: {args.backlog:,} open missions, load average {loadavg}")
        print(f"  idle: fleetd {idle:.3f} cores over {args.idle:.0f} s")
        for kind in ("create", "get") if args.requests else ():
            ms, wall = asyncio.run(_per_request(fleetd, headers, body, kind, args.requests))
            print(f"  {kind}: {ms:.2f} ms fleetd CPU per request ({args.requests} in {wall:.1f} s)")
    finally:
        fleetd.stop()


if __name__ == "__main__":
    main()
