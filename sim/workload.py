"""A mission workload for the demo: missions created through the control API, as a nurse
or an operator would, and a one-line account of what became of them.

Arrivals are a Poisson process (exponential gaps, seeded); each mission goes between two
different named places of the facility, with a mix of priorities. The simulator speaks to
fleetd only as people and vehicles do: this module uses nothing but the HTTP API.
"""

from __future__ import annotations

import asyncio
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import structlog

log = structlog.get_logger(__name__)

#: Priorities drawn for the demo, with their weights.
PRIORITY_MIX: tuple[tuple[str, float], ...] = (
    ("low", 0.15),
    ("normal", 0.6),
    ("high", 0.2),
    ("urgent", 0.05),
)


@dataclass(frozen=True, slots=True)
class WorkloadPlan:
    """How many missions a minute, between which places, drawn with which seed."""

    per_minute: float
    places: tuple[str, ...]
    seed: int = 42
    facility: str | None = None


@dataclass(slots=True)
class WorkloadLog:
    """The missions this workload created (ids) and the requests the API refused."""

    created: list[str] = field(default_factory=list)
    refused: int = 0


def next_mission(rng: random.Random, plan: WorkloadPlan) -> dict[str, Any]:
    """The body of the next ``POST /v1/missions`` (pure: depends only on ``rng``)."""
    pickup, dropoff = rng.sample(plan.places, 2)
    names = [p for p, _ in PRIORITY_MIX]
    weights = [w for _, w in PRIORITY_MIX]
    body: dict[str, Any] = {
        "pickup": {"place": pickup},
        "dropoff": {"place": dropoff},
        "priority": rng.choices(names, weights)[0],
        "notes": "demo workload",
    }
    if plan.facility is not None:
        body["facility"] = plan.facility
    return body


async def run_workload(
    client: httpx.AsyncClient, plan: WorkloadPlan, record: WorkloadLog
) -> None:
    """Create missions at ``plan.per_minute`` (Poisson) until cancelled."""
    if plan.per_minute <= 0 or len(plan.places) < 2:
        return
    rng = random.Random(plan.seed)
    while True:
        await asyncio.sleep(rng.expovariate(plan.per_minute / 60.0))
        body = next_mission(rng, plan)
        try:
            response = await client.post("/v1/missions", json=body)
        except httpx.HTTPError as exc:
            record.refused += 1
            log.warning("workload.request_failed", error=type(exc).__name__)
            continue
        if response.status_code == 201:
            record.created.append(response.json()["id"])
        else:
            record.refused += 1
            log.warning("workload.refused", status=response.status_code, body=response.text[:200])


@dataclass(frozen=True, slots=True)
class Summary:
    """What became of a set of missions."""

    created: int
    completed: int
    open: int
    failed_or_cancelled: int
    mean_wait_s: float | None

    def line(self) -> str:
        """The one-line summary the demo prints."""
        wait = f"{self.mean_wait_s:.0f} s" if self.mean_wait_s is not None else "n/a"
        return (
            f"missions: {self.created} created, {self.completed} completed, {self.open} open, "
            f"{self.failed_or_cancelled} failed or cancelled; mean wait to pickup {wait}"
        )


def summarise(missions: Sequence[dict[str, Any]]) -> Summary:
    """Counts by status and the mean wait (created -> pickup_arrived) of ``missions``.

    Each item is a mission with its timeline, as ``GET /v1/missions/{id}`` answers.
    """
    waits: list[float] = []
    counts = {"completed": 0, "open": 0, "ended": 0}
    for mission in missions:
        status = mission["status"]
        if status == "completed":
            counts["completed"] += 1
        elif status in ("failed", "cancelled"):
            counts["ended"] += 1
        else:
            counts["open"] += 1
        times = {e["event"]: e["at"] for e in mission.get("timeline", [])}
        if "created" in times and "pickup_arrived" in times:
            created = datetime.fromisoformat(times["created"])
            arrived = datetime.fromisoformat(times["pickup_arrived"])
            waits.append((arrived - created).total_seconds())
    return Summary(
        created=len(missions),
        completed=counts["completed"],
        open=counts["open"],
        failed_or_cancelled=counts["ended"],
        mean_wait_s=statistics.fmean(waits) if waits else None,
    )


async def fetch_missions(client: httpx.AsyncClient, ids: Sequence[str]) -> list[dict[str, Any]]:
    """Each mission of ``ids`` with its timeline (missions the API no longer shows are skipped)."""
    out: list[dict[str, Any]] = []
    for mission_id in ids:
        response = await client.get(f"/v1/missions/{mission_id}")
        if response.status_code == 200:
            out.append(response.json())
    return out
