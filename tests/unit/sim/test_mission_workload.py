"""The mission workload of the fault suite and the soak (sim.harness.MissionWorkload):
each mission re-sent with its Idempotency-Key, to the next daemon, until one accepts it."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest

from sim.harness import MissionRefused, MissionWorkload

PLACES = ("a", "b", "c")


class Daemons:
    """Two daemons on one database: ``up`` answers, ``down`` refuses connections (or
    answers ``status`` while its dependency is away); a key seen before gets its mission
    again with 200, as fleetd's idempotency does."""

    def __init__(self, down_status: int | None = None) -> None:
        self.down_status = down_status
        self.missions: dict[str, uuid.UUID] = {}
        self.sent: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        key = request.headers["Idempotency-Key"]
        self.sent.append((request.url.host, key))
        if request.url.host == "down":
            if self.down_status is None:
                raise httpx.ConnectError("refused", request=request)
            return httpx.Response(self.down_status, json={"title": "unavailable"})
        if key in self.missions:
            return httpx.Response(200, json={"id": str(self.missions[key])})
        self.missions[key] = uuid.uuid4()
        return httpx.Response(201, json={"id": str(self.missions[key])})


def _workload(
    daemons: Daemons, urls: list[str] | Callable[[], list[str]], **kw: object
) -> MissionWorkload:
    return MissionWorkload(
        urls, "token", PLACES, per_second=1000.0, retry_after_s=0.0,
        transport=httpx.MockTransport(daemons), **kw,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.mark.parametrize("down_status", [None, 503])
async def test_a_daemon_down_sends_the_mission_to_the_other(down_status: int | None) -> None:
    daemons = Daemons(down_status)
    workload = _workload(daemons, ["http://down", "http://up"])
    await workload.run(3)
    assert workload.created == list(daemons.missions.values())
    assert len(workload.created) == 3
    assert workload.retries == 3  # each mission tried the daemon that is down first
    # Each mission went to both daemons with one key: the second got what the first missed.
    keys = [key for _, key in daemons.sent]
    assert [host for host, _ in daemons.sent] == ["down", "up"] * 3
    assert keys[0::2] == keys[1::2] and len(set(keys)) == 3


async def test_an_answer_lost_on_the_way_is_not_doubled() -> None:
    """The first daemon stored the mission, then its answer was lost: the re-sent key gets
    the same mission (200), which is counted once."""
    daemons = Daemons()
    lose_first = {"done": False}

    def transport(request: httpx.Request) -> httpx.Response:
        response = daemons(request)
        if not lose_first["done"]:
            lose_first["done"] = True
            raise httpx.ReadError("daemon killed mid-answer", request=request)
        return response

    workload = MissionWorkload(
        ["http://up"], "token", PLACES, per_second=1000.0, retry_after_s=0.0,
        transport=httpx.MockTransport(transport),
    )  # fmt: skip
    await workload.run(2)
    assert workload.created == list(daemons.missions.values())
    assert len(workload.created) == 2
    assert workload.retries == 1


async def test_a_refusal_for_good_fails_unless_handled() -> None:
    daemons = Daemons(down_status=422)
    with pytest.raises(MissionRefused, match="422"):
        await _workload(daemons, ["http://down"]).run(1)

    seen: list[int] = []
    workload = _workload(daemons, ["http://down"], on_refused=lambda r: seen.append(r.status_code))
    await workload.run(2)
    assert seen == [422, 422]
    assert workload.created == []
    assert workload.refused == {422: 2}
    assert workload.retries == 0


async def test_urls_are_asked_for_at_each_attempt() -> None:
    """The soak gives a function (its running daemons first); a single URL string is one
    URL, not a sequence of characters."""
    daemons = Daemons()
    asked: list[int] = []

    def urls() -> list[str]:
        asked.append(1)
        return ["http://down", "http://up"]

    workload = _workload(daemons, urls)
    await workload.run(1)
    assert len(workload.created) == 1
    assert len(asked) == 2  # once for "down", once for "up"
    assert MissionWorkload("http://up", "t", PLACES).urls() == ("http://up",)
