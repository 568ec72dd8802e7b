"""The registry: membership, liveness transitions, dirty tracking, positions, snapshots."""

from __future__ import annotations

import pytest

from dispatcher.config import Settings, builtin_facilities
from fleet.model import (
    GeoPosition,
    MapPose,
    OfflineReason,
    VehicleError,
    VehicleKey,
    VehicleKind,
    VehicleStatus,
)
from fleet.registry import Consumer, FleetRegistry
from geo.facility_maps import FacilityMaps

ROBOT = VehicleKey(VehicleKind.ROBOT, "acme", "r1")
DRIVER = VehicleKey(VehicleKind.DRIVER, "", "d1")


@pytest.fixture
def registry() -> FleetRegistry:
    facilities = builtin_facilities()
    return FleetRegistry(
        maps=FacilityMaps(f.spec for f in facilities),
        default_facility_id=Settings().default_facility.id,
        heartbeat_timeout_s=5.0,
        clock=lambda: 1000.0,
    )


class TestMembership:
    def test_register_announces_once(self, registry: FleetRegistry) -> None:
        """A new vehicle is recorded as registered; its id is derived from its wire identity."""
        rec = registry.register(ROBOT)
        again = registry.register(ROBOT)
        assert rec is again
        assert rec.id == ROBOT.id
        events = [c.event for c in registry.drain_changes()]
        assert events == ["registered"]
        assert registry.find(ROBOT) is not None

    def test_new_vehicle_is_offline_until_heard(self, registry: FleetRegistry) -> None:
        rec = registry.register(ROBOT)
        assert not rec.online
        assert rec.status is VehicleStatus.OFFLINE


class TestLiveness:
    def test_fresh_message_brings_online_and_silence_takes_offline(
        self, registry: FleetRegistry
    ) -> None:
        """Online on a fresh message; offline once silent for the timeout; both recorded."""
        rec = registry.register(ROBOT)
        registry.heard_from(rec, 1000.0, 1000.0)
        registry.changed(rec, now=1000.0)
        assert rec.online and rec.status is VehicleStatus.IDLE
        assert registry.expire(1004.9) == 0
        assert registry.expire(1005.0) == 1
        assert not rec.online and rec.offline_reason is OfflineReason.HEARTBEAT_TIMEOUT
        events = [c.event for c in registry.drain_changes()]
        assert "went_online" in events and "went_offline" in events

    def test_message_of_unknown_age_changes_nothing(self, registry: FleetRegistry) -> None:
        """A retained message without a timestamp (``None``) neither revives nor dates a vehicle.

        The first thing heard from a robot can be such a message; its record must stay
        readable (no "minus infinity" last-seen time reaching the API or the database).
        """
        rec = registry.register(ROBOT)
        registry.heard_from(rec, None, 1000.0)
        registry.changed(rec, now=1000.0)
        assert not rec.online and rec.last_seen is None
        view = registry.get(rec.id)
        assert view is not None and view.last_seen is None

    def test_robots_may_keep_a_longer_silence(self) -> None:
        """VDA 5050 robots may be quiet for 30 s; drivers keep the shorter timeout."""
        reg = FleetRegistry(
            maps=FacilityMaps(f.spec for f in builtin_facilities()),
            default_facility_id=Settings().default_facility.id,
            heartbeat_timeout_s=5.0,
            robot_heartbeat_timeout_s=35.0,
            clock=lambda: 1000.0,
        )
        robot, driver = reg.register(ROBOT), reg.register(DRIVER)
        for rec in (robot, driver):
            reg.heard_from(rec, 1000.0, 1000.0)
        assert reg.expire(1006.0) == 1
        assert robot.online and not driver.online
        assert reg.expire(1035.0) == 1
        assert not robot.online
        assert reg.heartbeat_timeout_s == 35.0

    def test_stale_sign_of_life_does_not_bring_online(self, registry: FleetRegistry) -> None:
        """A retained ONLINE written longer ago than the timeout leaves the vehicle offline."""
        rec = registry.register(ROBOT)
        registry.heard_from(rec, 900.0, 1000.0)
        assert not rec.online

    def test_last_will_takes_offline_at_once(self, registry: FleetRegistry) -> None:
        rec = registry.register(ROBOT)
        registry.heard_from(rec, 1000.0, 1000.0)
        registry.went_offline(rec, OfflineReason.CONNECTION_BROKEN, 1000.5)
        assert not rec.online and rec.offline_reason is OfflineReason.CONNECTION_BROKEN
        assert rec.status is VehicleStatus.OFFLINE


class TestPositions:
    def test_map_pose_resolves_to_wgs84_near_the_origin(self, registry: FleetRegistry) -> None:
        """A pose in the demo campus map becomes a WGS84 position in that facility."""
        rec = registry.register(ROBOT)
        registry.set_map_pose(rec, MapPose("campus", 100.0, 50.0, 0.0), 1000.0)
        view = registry.get(rec.id)
        assert view is not None and view.position is not None
        assert 52.5 < view.position.lat < 52.53
        assert 13.40 < view.position.lon < 13.41
        assert not view.unknown_map

    def test_unknown_map_is_flagged_and_position_unknown(self, registry: FleetRegistry) -> None:
        rec = registry.register(ROBOT)
        registry.set_map_pose(rec, MapPose("nowhere", 1.0, 2.0, 0.0), 1000.0)
        view = registry.get(rec.id)
        assert view is not None
        assert view.unknown_map and view.position is None and view.map_pose is not None

    def test_driver_position_is_taken_as_given(self, registry: FleetRegistry) -> None:
        rec = registry.register(DRIVER)
        registry.set_geo_position(rec, GeoPosition(52.52, 13.40, 90.0, 5.0), 1000.0)
        view = registry.get(rec.id)
        assert view is not None and view.position == GeoPosition(52.52, 13.40, 90.0, 5.0)


class TestDirtyTracking:
    def test_each_consumer_sees_each_change_once(self, registry: FleetRegistry) -> None:
        rec = registry.register(ROBOT)
        registry.set_map_pose(rec, MapPose("campus", 1.0, 1.0, 0.0), 1000.0)
        assert [r.id for r in registry.take_dirty(Consumer.GEO)] == [rec.id]
        assert registry.take_dirty(Consumer.GEO) == []
        assert [r.id for r in registry.take_dirty(Consumer.POSITIONS)] == [rec.id]

    def test_failed_write_is_put_back(self, registry: FleetRegistry) -> None:
        rec = registry.register(ROBOT)
        taken = registry.take_dirty(Consumer.VEHICLES)
        registry.mark_dirty(Consumer.VEHICLES, taken)
        assert [r.id for r in registry.take_dirty(Consumer.VEHICLES)] == [rec.id]

    def test_requeued_changes_keep_their_order(self, registry: FleetRegistry) -> None:
        rec = registry.register(ROBOT)
        registry.heard_from(rec, 1000.0, 1000.0)
        first = registry.drain_changes()
        registry.set_errors(rec, (VehicleError("x", "WARNING"),), 1001.0)
        registry.requeue_changes(first)
        events = [c.event for c in registry.drain_changes()]
        assert events[: len(first)] == [c.event for c in first]
        assert events[-1] == "error_raised"


class TestSnapshot:
    def test_snapshot_is_immutable_and_reuses_unchanged_views(
        self, registry: FleetRegistry
    ) -> None:
        a = registry.register(ROBOT)
        registry.register(DRIVER)
        first = registry.snapshot()
        second = registry.snapshot()
        assert len(first) == 2
        assert first[0] is second[0]
        registry.heard_from(a, 1000.0, 1000.0)
        third = registry.snapshot()
        changed = next(v for v in third if v.id == a.id)
        assert changed.online and changed is not next(v for v in first if v.id == a.id)
