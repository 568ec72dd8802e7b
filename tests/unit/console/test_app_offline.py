"""The status view without a daemon, and its stream parser fed bad input.

No daemon answers here: the view must say so (STALE) at once and keep trying; keys work.
The stream parser is fed over ``httpx.MockTransport`` (HTTP framing only, no service).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from dispatcher.console.app import StatusApp
from dispatcher.console.client import DaemonClient, Feed, Snapshot
from dispatcher.console.widgets import HelpScreen
from tests.conftest import eventually, free_port


async def test_no_daemon_shows_stale_and_keys_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = StatusApp(DaemonClient(f"http://127.0.0.1:{free_port()}", "fltd_x"))
    async with app.run_test(size=(80, 24)) as pilot:
        await eventually(lambda: app.state.stale_reason == "cannot connect to the daemon", 10)
        assert app.topbar_text().startswith("STALE")
        assert app.query_one("#topbar").has_class("stale")
        screens = []
        await pilot.press("question_mark")
        await pilot.pause()
        screens.append(type(app.screen))
        await pilot.press("escape")
        await pilot.pause()
        screens.append(type(app.screen))
        assert screens[0] is HelpScreen and screens[1] is not HelpScreen
        assert app.check_action("cancel_mission", ()) is False  # no permissions known yet


class _Sink:
    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []
        self.events: list[tuple[str, dict[str, Any], str | None]] = []
        self.lost: list[str] = []

    def feed_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshots.append(snapshot)

    def feed_event(self, name: str, data: Mapping[str, Any], event_id: str | None) -> None:
        self.events.append((name, dict(data), event_id))

    def feed_lost(self, reason: str) -> None:
        self.lost.append(reason)


STREAM = (
    "retry: 2000\n: connected\n\n"
    'id: 7\nevent: vehicle.went_offline\ndata: {"type":"vehicle","vehicle_id":"x"}\n\n'
    "id: 8\nevent: mission.created\ndata: not json\n\n"
    "id: 9\nevent: alert.raised\ndata: [1, 2]\n\n"
    ": keep-alive\n\n"
)


def _handler(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path == "/v1/events":
        return httpx.Response(200, text=STREAM, headers={"content-type": "text/event-stream"})
    if path == "/v1/me":
        return httpx.Response(200, json={"role": "guest", "permissions": ["fleet_summary"]})
    if path == "/v1/fleet/summary":
        return httpx.Response(200, json={"total": 3, "online": 1})
    return httpx.Response(
        403,
        json={"title": "Forbidden", "detail": "no"},
        headers={"content-type": "application/problem+json"},
    )


async def test_bad_stream_data_is_counted_never_raised() -> None:
    client = DaemonClient("http://fleetd.test", "t", transport=httpx.MockTransport(_handler))
    sink = _Sink()
    feed = Feed(client, sink)
    task = asyncio.create_task(feed.run())
    try:
        await eventually(lambda: bool(sink.lost), 5)  # the canned stream ends: a loss
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()
    # The feed reconnects by itself after the loss and may read the canned stream again.
    assert {(n, i) for n, _, i in sink.events} == {("vehicle.went_offline", "7")}
    assert feed.bad_events >= 2
    assert feed.last_event_id == "9"  # resumes after the last id seen, bad data or not
    (snapshot, *_) = sink.snapshots
    assert snapshot.me["role"] == "guest" and snapshot.summary["total"] == 3
    assert set(snapshot.unavailable) == {"vehicles", "missions", "alerts", "zones"}
    assert sink.lost[0] == "the event stream ended"


def _snapshot_with_a_fleet() -> Snapshot:
    vehicles = [
        {
            "id": f"00000000-0000-0000-0000-{i:012d}",
            "facility_id": "00000000-0000-0000-0000-00000000fac1",
            "name": f"r{i:04d}",
            "kind": "robot",
            "online": True,
            "status": "idle",
            "battery": 10.0 * i,
            "lat": 52.52,
            "lon": 13.40,
            "last_seen": "2026-12-03T10:00:00+00:00",
        }
        for i in range(1, 4)
    ]
    return Snapshot(
        me={"role": "operator", "permissions": ["fleet_view", "vehicle_command"]},
        vehicles=vehicles,
        missions=[],
        alerts=[],
        zones=[],
    )


async def test_a_snapshot_then_a_lost_daemon_does_not_end_the_view() -> None:
    """The daemon goes away between the snapshot and the map's layout read: the view says
    STALE and stays up (the layout read failing must not end it)."""
    app = StatusApp(DaemonClient(f"http://127.0.0.1:{free_port()}", "fltd_x"))
    async with app.run_test(size=(80, 24)) as pilot:
        await eventually(lambda: app.state.stale_reason == "cannot connect to the daemon", 10)
        app.feed_snapshot(_snapshot_with_a_fleet())  # as if it had answered just before
        await pilot.pause(0.5)
        assert app.is_running and app.layout_doc is None
        await pilot.pause(0.2)
        assert app.return_code is None
