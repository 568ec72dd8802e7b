"""The scripted driver's behaviour without a broker: offers, the trip, commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pyproj import Geod

from dispatcher.config import Settings
from sim.driver import DriverSpec, ScriptedDriver
from sim.fleet import FleetPlan, build_fleet

START = (52.5200, 13.4050)
PICKUP = (52.5210, 13.4050)  # ~111 m north
DROPOFF = (52.5210, 13.4070)  # ~136 m east of the pickup


def driver(**spec: Any) -> ScriptedDriver:
    return ScriptedDriver(DriverSpec("d-1", [START], speed_mps=10.0, service_s=2.0, **spec))


def offer(offer_id: str = "o-1", *, expires_in_s: float = 30.0) -> dict[str, Any]:
    expires = datetime.now(UTC) + timedelta(seconds=expires_in_s)
    return {
        "offerId": offer_id,
        "missionId": f"m-{offer_id}",
        "pickup": {"name": "Ward", "lat": PICKUP[0], "lon": PICKUP[1]},
        "dropoff": {"name": "X-ray", "lat": DROPOFF[0], "lon": DROPOFF[1]},
        "expiresAt": expires.isoformat().replace("+00:00", "Z"),
    }


def sent(d: ScriptedDriver) -> list[tuple[str, dict[str, Any]]]:
    out = []
    while not d._outbox.empty():
        out.append(d._outbox.get_nowait())
    return out


def run(d: ScriptedDriver, seconds: float, dt: float = 0.1) -> None:
    for _ in range(round(seconds / dt)):
        d.step(dt)


class TestOffers:
    def test_a_free_driver_accepts_and_sets_off(self) -> None:
        d = driver()
        d.on_offer(offer())
        (topic, answer), (trip_topic, trip) = sent(d)
        assert (topic, answer["offerId"], answer["decision"]) == ("offerResponse", "o-1", "accept")
        assert (trip_topic, trip["event"], trip["missionId"]) == ("trip", "to_pickup", "m-o-1")
        assert d.availability == "busy" and d.status_message()["missionId"] == "m-o-1"

    def test_a_busy_driver_declines(self) -> None:
        d = driver()
        d.on_offer(offer("o-1"))
        sent(d)
        d.on_offer(offer("o-2"))
        ((_, answer),) = sent(d)
        assert (answer["decision"], answer["reason"]) == ("decline", "busy")

    def test_declines_follow_the_seeded_probability(self) -> None:
        def decisions(seed: int) -> list[str]:
            d = driver(decline_probability=0.5, seed=seed)
            got = []
            for i in range(20):
                d.on_offer(offer(f"o-{i}"))
                got.append(sent(d)[0][1]["decision"])
                d.job, d.availability = None, "online"
            return got

        assert decisions(7) == decisions(7)
        assert {"accept", "decline"} == set(decisions(7))

    def test_ignored_and_expired_offers_get_no_answer(self) -> None:
        d = driver(ignore_offers=True)
        d.on_offer(offer())
        assert not sent(d) and d.job is None
        d = driver()
        d.on_offer(offer(expires_in_s=-1))
        assert not sent(d) and d.job is None


class TestTrip:
    def test_the_trip_is_driven_and_reported_in_order(self) -> None:
        d = driver()
        d.on_offer(offer())
        run(d, 40.0)
        trips = [m for t, m in sent(d) if t == "trip"]
        events = [m["event"] for m in trips]
        assert events == [
            "to_pickup", "arrived_pickup", "picked_up", "to_dropoff", "arrived_dropoff",
            "dropped_off",
        ]  # fmt: skip
        assert (trips[1]["lat"], trips[1]["lon"]) == PICKUP
        assert (trips[-1]["lat"], trips[-1]["lon"]) == DROPOFF
        assert d.job is None and d.availability == "online"
        assert d.completed == ["m-o-1"]

    def test_it_moves_at_its_speed_along_the_geodesic(self) -> None:
        d = driver()
        d.on_offer(offer())
        run(d, 5.0)
        _, _, dist = Geod(ellps="WGS84").inv(START[1], START[0], d.lon, d.lat)
        assert abs(dist - 50.0) < 0.5
        assert abs(d.lon - START[1]) < 1e-9  # due north, towards the pickup

    def test_a_paused_driver_stands_still(self) -> None:
        d = driver()
        d.on_offer(offer())
        d.on_command({"correlationId": "c-1", "command": "pause"})
        run(d, 5.0)
        assert (d.lat, d.lon) == START


class TestCommands:
    def test_every_command_is_acknowledged(self) -> None:
        d = driver()
        d.on_command({"correlationId": "c-1", "command": "resume"})
        d.on_command({"correlationId": "c-2", "command": "fly"})
        acks = [(m["correlationId"], m["result"]) for t, m in sent(d) if t == "commandAck"]
        assert acks == [("c-1", "accepted"), ("c-2", "rejected")]

    def test_cancel_job_by_offer_drops_the_job(self) -> None:
        d = driver()
        d.on_offer(offer("o-1"))
        d.on_command({"correlationId": "c-1", "command": "cancel_job", "offerId": "o-1"})
        assert d.job is None and d.cancelled == ["m-o-1"] and d.availability == "online"

    def test_cancel_job_for_another_offer_leaves_the_job(self) -> None:
        d = driver()
        d.on_offer(offer("o-2"))
        d.on_command({"correlationId": "c-1", "command": "cancel_job", "offerId": "o-1"})
        assert d.mission_id == "m-o-2" and not d.cancelled

    def test_maintenance_off_ends_the_break(self) -> None:
        d = driver()
        d.on_command({"correlationId": "c-1", "command": "maintenance", "enabled": True})
        assert d.availability == "break"
        d.on_command({"correlationId": "c-2", "command": "maintenance", "enabled": False})
        assert d.availability == "online"


class TestFleet:
    def test_the_fleet_plan_sets_the_drivers_decline_probability(self) -> None:
        _, drivers = build_fleet(
            Settings(), FleetPlan(robots=0, drivers=3, driver_decline_probability=0.3)
        )
        assert [d.spec.decline_probability for d in drivers] == [0.3] * 3
        assert len({d.spec.seed for d in drivers}) == 3
