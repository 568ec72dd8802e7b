"""The registry: membership, what vehicles report, liveness, dirty tracking, the change feed."""

# The registry changes its records in place: mypy's narrowing of an attribute checked
# before a call (``assert rec.online``) outlives the call that changes it, and flags the
# checks after it as unreachable.
# mypy: disable-error-code="unreachable, comparison-overlap"

from __future__ import annotations

import dataclasses
import re
from importlib import resources

import pytest

from dispatcher.config import Settings, builtin_facilities
from fleet.changes import ChangeFeed, FleetChange
from fleet.model import (
    Capabilities,
    ChangeKind,
    ConnectionState,
    DriverAvailability,
    GeoPosition,
    MapPose,
    OfflineReason,
    OperatingMode,
    VehicleError,
    VehicleKey,
    VehicleKind,
    VehicleStatus,
)
from fleet.record import Consumer
from fleet.registry import WILL_GRACE_S, FleetRegistry
from fleet.reports import DriverState, Heard, RobotState
from geo.facility_maps import FacilityMaps

ROBOT = VehicleKey(VehicleKind.ROBOT, "acme", "r1")
DRIVER = VehicleKey(VehicleKind.DRIVER, "", "d1")

IDLE_ROBOT = RobotState(
    battery_pct=80.0,
    charging=False,
    working=False,
    driving=False,
    paused=False,
    operating_mode=OperatingMode.AUTOMATIC,
    order_id=None,
    order_update_id=None,
    last_node_id=None,
    errors=(),
    speed_mps=None,
    pose=None,
)
FREE_DRIVER = DriverState(
    availability=DriverAvailability.ONLINE,
    phone_battery_pct=70.0,
    speed_mps=0.0,
    on_job=False,
    position=None,
)


def live(at: float = 1000.0) -> Heard:
    """A message received live at ``at``."""
    return Heard(at, at)


def robot_state(**changes: object) -> RobotState:
    return dataclasses.replace(IDLE_ROBOT, **changes)  # type: ignore[arg-type]


def kinds(registry: FleetRegistry) -> list[ChangeKind]:
    return [c.kind for c in registry.drain_changes()]


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
        assert kinds(registry) == [ChangeKind.REGISTERED]
        assert registry.find(ROBOT) is not None

    def test_new_vehicle_is_offline_until_heard(self, registry: FleetRegistry) -> None:
        """A registered vehicle is offline until a message proves it alive."""
        rec = registry.register(ROBOT)
        assert not rec.online
        assert rec.status is VehicleStatus.OFFLINE


class TestLiveness:
    def test_fresh_message_brings_online_and_silence_takes_offline(
        self, registry: FleetRegistry
    ) -> None:
        """Online on a fresh message; offline once silent for the timeout; both recorded."""
        rec = registry.register(ROBOT)
        registry.apply_sign_of_life(rec, live())
        assert rec.online and rec.status is VehicleStatus.IDLE
        assert registry.expire(1004.9) == 0
        assert registry.expire(1005.0) == 1
        assert not rec.online and rec.offline_reason is OfflineReason.HEARTBEAT_TIMEOUT
        events = kinds(registry)
        assert ChangeKind.WENT_ONLINE in events and ChangeKind.WENT_OFFLINE in events

    def test_fleetd_cut_off_judges_vehicles_from_when_it_is_back(
        self, registry: FleetRegistry
    ) -> None:
        """Issue 18: silence while fleetd's own broker session was down proves nothing;
        from the moment it is back each online vehicle has a whole timeout again."""
        rec = registry.register(ROBOT)
        registry.apply_sign_of_life(rec, live(1000.0))
        assert registry.excuse_silence(1030.0) == 1  # fleetd back after 30 s away
        assert registry.expire(1034.9) == 0
        assert rec.online
        assert registry.expire(1035.0) == 1  # still silent a whole timeout later

    def test_excusing_silence_leaves_offline_vehicles_offline(
        self, registry: FleetRegistry
    ) -> None:
        rec = registry.register(ROBOT)
        assert registry.excuse_silence(1030.0) == 0
        assert not rec.online

    def test_message_of_unknown_age_changes_nothing(self, registry: FleetRegistry) -> None:
        """A retained message without a timestamp neither revives nor dates a vehicle.

        The first thing heard from a robot can be such a message; its record must stay
        readable (no "minus infinity" last-seen time reaching the API or the database).
        """
        rec = registry.register(ROBOT)
        registry.apply_sign_of_life(rec, Heard(1000.0, None, retained=True))
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
            reg.apply_sign_of_life(rec, live())
        assert reg.expire(1006.0) == 1
        assert robot.online and not driver.online
        assert reg.expire(1035.0) == 1
        assert not robot.online
        assert reg.heartbeat_timeout_s == 35.0

    def test_stale_sign_of_life_does_not_bring_online(self, registry: FleetRegistry) -> None:
        """A retained message written longer ago than the timeout leaves the vehicle offline."""
        rec = registry.register(ROBOT)
        registry.apply_sign_of_life(rec, Heard(1000.0, 900.0, retained=True))
        assert not rec.online

    def test_retained_message_counts_from_when_it_was_written(
        self, registry: FleetRegistry
    ) -> None:
        """A retained message is dated by its own timestamp, never later than its arrival."""
        rec = registry.register(ROBOT)
        registry.apply_sign_of_life(rec, Heard(1000.0, 998.0, retained=True))
        assert rec.online and rec.last_seen == 998.0
        registry.apply_sign_of_life(rec, Heard(1001.0, 5000.0, retained=True))
        assert rec.last_seen == 1001.0


class TestConnection:
    """``apply_connection``: the vehicle's own word on its connection."""

    def test_online_brings_online(self, registry: FleetRegistry) -> None:
        """A live ONLINE is a sign of life."""
        rec = registry.register(ROBOT)
        registry.apply_connection(rec, ConnectionState.ONLINE, live())
        assert rec.online and rec.status is VehicleStatus.IDLE

    def test_stale_retained_online_is_noted(self, registry: FleetRegistry) -> None:
        """A retained ONLINE older than the timeout leaves it offline, saying why."""
        rec = registry.register(ROBOT)
        registry.apply_connection(rec, ConnectionState.ONLINE, Heard(1000.0, 900.0, True))
        assert not rec.online and rec.offline_reason is OfflineReason.STALE_RETAINED

    def test_goodbye_takes_offline_at_once(self, registry: FleetRegistry) -> None:
        """An orderly goodbye: offline now, with the reason, recorded."""
        rec = registry.register(ROBOT)
        registry.apply_connection(rec, ConnectionState.ONLINE, live())
        registry.drain_changes()
        registry.apply_connection(rec, ConnectionState.OFFLINE, live(1000.5))
        assert not rec.online and rec.offline_reason is OfflineReason.DISCONNECTED
        assert rec.status is VehicleStatus.OFFLINE
        changes = registry.drain_changes()
        assert [c.kind for c in changes] == [ChangeKind.WENT_OFFLINE, ChangeKind.STATUS_CHANGED]
        assert changes[0].details["reason"] == OfflineReason.DISCONNECTED.value

    def test_last_will_takes_offline_after_its_grace(self, registry: FleetRegistry) -> None:
        """The Last Will: offline once :data:`WILL_GRACE_S` has passed with fleetd's own
        session up (the liveness check, ``expire``), with the reason, recorded."""
        rec = registry.register(ROBOT)
        registry.apply_connection(rec, ConnectionState.ONLINE, live())
        registry.drain_changes()
        registry.apply_connection(rec, ConnectionState.CONNECTION_BROKEN, live(1000.5))
        registry.expire(1000.5 + WILL_GRACE_S / 2)
        assert rec.online and not registry.drain_changes()
        registry.expire(1000.5 + WILL_GRACE_S)
        assert not rec.online and rec.offline_reason is OfflineReason.CONNECTION_BROKEN
        assert rec.status is VehicleStatus.OFFLINE
        changes = registry.drain_changes()
        assert [c.kind for c in changes] == [ChangeKind.WENT_OFFLINE, ChangeKind.STATUS_CHANGED]
        assert changes[0].details["reason"] == OfflineReason.CONNECTION_BROKEN.value

    def test_last_wills_of_a_broker_going_away_change_nothing(
        self, registry: FleetRegistry
    ) -> None:
        """A broker shutting down publishes every client's Last Will, then fleetd's own
        session drops: when fleetd is back (``excuse_silence``) those wills are void, and
        the retained copies delivered on its re-subscription prove nothing either."""
        rec = registry.register(ROBOT)
        registry.apply_connection(rec, ConnectionState.ONLINE, live())
        registry.drain_changes()
        registry.apply_connection(rec, ConnectionState.CONNECTION_BROKEN, live(1000.5))
        # fleetd finds itself cut off 0.1 s later (no expire meanwhile); back 3 s later.
        registry.excuse_silence(1003.5, cut_off_at=1000.6)
        registry.apply_connection(
            rec, ConnectionState.CONNECTION_BROKEN, Heard(1003.6, 990.0, True)
        )
        registry.expire(1003.6 + WILL_GRACE_S)
        assert rec.online
        assert ChangeKind.WENT_OFFLINE not in [c.kind for c in registry.drain_changes()]
        # Still judged by its heartbeat from fleetd's return.
        registry.expire(1003.5 + registry.timeout_for(rec) + 0.1)
        assert not rec.online and rec.offline_reason is OfflineReason.HEARTBEAT_TIMEOUT

    def test_a_last_will_delivered_on_return_waits_for_the_heartbeat(
        self, registry: FleetRegistry
    ) -> None:
        """A will queued for fleetd's persistent session while it was cut off, delivered on
        its return: maybe the broker's own shutdown, so the vehicle is judged by its
        heartbeat from fleetd's return; heard live meanwhile, it stays online."""
        rec = registry.register(ROBOT)
        registry.apply_connection(rec, ConnectionState.ONLINE, live())
        registry.excuse_silence(1003.5, cut_off_at=1001.0)
        registry.apply_connection(rec, ConnectionState.CONNECTION_BROKEN, live(1003.6))
        registry.expire(1003.6 + WILL_GRACE_S)
        assert rec.online
        registry.apply_robot_pose(rec, None, live(1008.0))  # reconnected after the broker
        registry.expire(1003.5 + registry.timeout_for(rec) + 0.1)
        assert rec.online

    def test_a_queued_will_before_the_return_is_noticed_waits_too(
        self, registry: FleetRegistry
    ) -> None:
        """The queue comes the moment the session is up, before the liveness loop sees
        fleetd back: such a will waits for the heartbeat from the return as well."""
        rec = registry.register(ROBOT)
        registry.apply_connection(rec, ConnectionState.ONLINE, live())
        registry.apply_connection(rec, ConnectionState.CONNECTION_BROKEN, live(1003.4))
        registry.excuse_silence(1003.5, cut_off_at=1001.0)
        registry.expire(1003.4 + WILL_GRACE_S)
        assert rec.online
        registry.apply_robot_pose(rec, None, live(1006.0))
        registry.expire(1003.5 + registry.timeout_for(rec) + 0.1)
        assert rec.online

    def test_a_last_will_delivered_on_return_counts_when_nothing_follows(
        self, registry: FleetRegistry
    ) -> None:
        """A vehicle really lost while fleetd was cut off: its queued will applies once
        a heartbeat timeout from fleetd's return has passed without a word from it."""
        rec = registry.register(ROBOT)
        registry.apply_connection(rec, ConnectionState.ONLINE, live())
        registry.excuse_silence(1003.5, cut_off_at=1001.0)
        registry.apply_connection(rec, ConnectionState.CONNECTION_BROKEN, live(1003.6))
        registry.expire(1003.5 + registry.timeout_for(rec))
        assert not rec.online and rec.offline_reason is OfflineReason.CONNECTION_BROKEN

    def test_a_last_will_long_after_the_return_takes_only_the_grace(
        self, registry: FleetRegistry
    ) -> None:
        rec = registry.register(ROBOT)
        registry.excuse_silence(1003.5, cut_off_at=1001.0)
        later = 1003.5 + registry.timeout_for(rec) + 5.0
        registry.apply_connection(rec, ConnectionState.ONLINE, live(later - 1.0))
        registry.apply_connection(rec, ConnectionState.CONNECTION_BROKEN, live(later))
        registry.expire(later + WILL_GRACE_S)
        assert not rec.online and rec.offline_reason is OfflineReason.CONNECTION_BROKEN

    def test_a_vehicle_heard_after_its_will_stays_online(self, registry: FleetRegistry) -> None:
        """Heard live after its Last Will (it reconnected within the grace): still online."""
        rec = registry.register(ROBOT)
        registry.apply_connection(rec, ConnectionState.ONLINE, live())
        registry.apply_connection(rec, ConnectionState.CONNECTION_BROKEN, live(1000.5))
        registry.apply_connection(rec, ConnectionState.ONLINE, live(1000.8))
        registry.expire(1000.5 + WILL_GRACE_S + 0.1)
        assert rec.online

    def test_last_will_of_an_offline_vehicle_says_why(self, registry: FleetRegistry) -> None:
        """A vehicle not online is not held back by the grace: the reason is noted at once."""
        rec = registry.register(ROBOT)
        registry.apply_connection(rec, ConnectionState.CONNECTION_BROKEN, live(1000.5))
        assert not rec.online and rec.offline_reason is OfflineReason.CONNECTION_BROKEN


class TestRobotState:
    """``apply_robot_state``: one state message updates the record and its status at once."""

    def test_fields_and_status_follow_the_report(self, registry: FleetRegistry) -> None:
        """Motion, order progress and mode are taken; status is derived; battery is clamped."""
        rec = registry.register(ROBOT)
        registry.apply_robot_state(
            rec,
            robot_state(
                battery_pct=104.0,
                driving=True,
                working=True,
                order_id="o-1",
                order_update_id=2,
                last_node_id="n3",
                speed_mps=1.2,
            ),
            live(),
        )
        view = registry.get(rec.id)
        assert view is not None
        assert view.online and view.status is VehicleStatus.DRIVING
        assert view.battery_pct == 100.0
        assert (view.order_id, view.order_update_id) == ("o-1", 2)
        assert view.operating_mode is OperatingMode.AUTOMATIC
        assert rec.last_node_id == "n3" and rec.speed_mps == 1.2

    @pytest.mark.parametrize(
        ("mode", "status"),
        [
            (OperatingMode.AUTOMATIC, VehicleStatus.IDLE),
            (OperatingMode.SEMIAUTOMATIC, VehicleStatus.IDLE),
            (OperatingMode.SERVICE, VehicleStatus.MAINTENANCE),
            (OperatingMode.MANUAL, VehicleStatus.BUSY),
            (OperatingMode.TEACHIN, VehicleStatus.BUSY),
        ],
    )
    def test_operating_mode_decides_who_controls(
        self, registry: FleetRegistry, mode: OperatingMode, status: VehicleStatus
    ) -> None:
        """A robot in service or manual mode is not free for work."""
        rec = registry.register(ROBOT)
        registry.apply_robot_state(rec, robot_state(operating_mode=mode), live())
        assert rec.status is status

    def test_status_change_is_recorded_once(self, registry: FleetRegistry) -> None:
        """A status change is one change event; repeating the same state records nothing."""
        rec = registry.register(ROBOT)
        registry.apply_robot_state(rec, IDLE_ROBOT, live())
        registry.drain_changes()
        registry.apply_robot_state(rec, robot_state(charging=True), live(1001.0))
        registry.apply_robot_state(rec, robot_state(charging=True), live(1002.0))
        changes = registry.drain_changes()
        assert [c.kind for c in changes] == [ChangeKind.STATUS_CHANGED]
        assert changes[0].details == {"from": "idle", "to": "charging"}

    def test_errors_raised_and_cleared_are_recorded(self, registry: FleetRegistry) -> None:
        """A FATAL error makes the robot ERROR; its disappearance is recorded too."""
        rec = registry.register(ROBOT)
        registry.apply_robot_state(rec, IDLE_ROBOT, live())
        registry.drain_changes()
        fatal = (VehicleError("laserBlocked", "FATAL"),)
        registry.apply_robot_state(rec, robot_state(errors=fatal), live(1001.0))
        assert rec.status is VehicleStatus.ERROR
        registry.apply_robot_state(rec, IDLE_ROBOT, live(1002.0))
        assert rec.status is VehicleStatus.IDLE
        assert kinds(registry) == [
            ChangeKind.ERROR_RAISED,
            ChangeKind.STATUS_CHANGED,
            ChangeKind.ERROR_CLEARED,
            ChangeKind.STATUS_CHANGED,
        ]

    def test_pose_is_positioned_and_scheduled(self, registry: FleetRegistry) -> None:
        """A localised state moves the robot: every writer sees it once."""
        rec = registry.register(ROBOT)
        registry.take_dirty(Consumer.VEHICLES)
        registry.apply_robot_state(
            rec, robot_state(pose=MapPose("campus", 100.0, 50.0, 0.0)), live()
        )
        for consumer in Consumer:
            assert [r.id for r in registry.take_dirty(consumer)] == [rec.id]

    def test_visualization_moves_without_touching_the_rest(self, registry: FleetRegistry) -> None:
        """``apply_robot_pose`` is a sign of life and a pose; battery and mode stay."""
        rec = registry.register(ROBOT)
        registry.apply_robot_state(rec, robot_state(battery_pct=55.0), live())
        registry.apply_robot_pose(rec, MapPose("campus", 1.0, 2.0, 0.0), live(1001.0))
        view = registry.get(rec.id)
        assert view is not None and view.position is not None
        assert view.battery_pct == 55.0 and rec.last_seen == 1001.0

    def test_factsheet_sets_payload_and_keeps_configured_capabilities(
        self, registry: FleetRegistry
    ) -> None:
        """The factsheet's load limit replaces only that capability."""
        rec = registry.register(ROBOT)
        rec.capabilities = Capabilities(wheelchair_types=("manual",), seats=1)
        registry.apply_factsheet(rec, max_payload_kg=180.0)
        view = registry.get(rec.id)
        assert view is not None
        assert view.capabilities == Capabilities(("manual",), 180.0, 1)


class TestDriverStatus:
    """``apply_driver_status``: a driver's own availability, speed and position."""

    @pytest.mark.parametrize(
        ("availability", "status"),
        [
            (DriverAvailability.ONLINE, VehicleStatus.IDLE),
            (DriverAvailability.BUSY, VehicleStatus.BUSY),
            (DriverAvailability.BREAK, VehicleStatus.BREAK),
            (DriverAvailability.OFFLINE, VehicleStatus.OFFLINE),
        ],
    )
    def test_availability_decides(
        self,
        registry: FleetRegistry,
        availability: DriverAvailability,
        status: VehicleStatus,
    ) -> None:
        """What the driver says about their work is their status."""
        rec = registry.register(DRIVER)
        registry.apply_driver_status(
            rec, dataclasses.replace(FREE_DRIVER, availability=availability), live()
        )
        assert rec.online and rec.status is status

    def test_moving_on_a_job_is_driving(self, registry: FleetRegistry) -> None:
        """Faster than walking pace on a job: driving; the phone's battery is the battery."""
        rec = registry.register(DRIVER)
        registry.apply_driver_status(
            rec, dataclasses.replace(FREE_DRIVER, speed_mps=8.0, on_job=True), live()
        )
        assert rec.status is VehicleStatus.DRIVING and rec.battery_pct == 70.0

    def test_position_is_taken_as_given(self, registry: FleetRegistry) -> None:
        """A phone's fix is WGS84 already; no fix leaves the last position in place."""
        rec = registry.register(DRIVER)
        fix = GeoPosition(52.52, 13.40, 90.0, 5.0)
        registry.apply_driver_status(rec, dataclasses.replace(FREE_DRIVER, position=fix), live())
        registry.apply_driver_status(rec, FREE_DRIVER, live(1001.0))
        view = registry.get(rec.id)
        assert view is not None and view.position == fix


class TestPositions:
    def test_map_pose_resolves_to_wgs84_near_the_origin(self, registry: FleetRegistry) -> None:
        """A pose in the demo campus map becomes a WGS84 position in that facility."""
        rec = registry.register(ROBOT)
        registry.apply_robot_pose(rec, MapPose("campus", 100.0, 50.0, 0.0), live())
        view = registry.get(rec.id)
        assert view is not None and view.position is not None
        assert 52.5 < view.position.lat < 52.53
        assert 13.40 < view.position.lon < 13.41
        assert not view.unknown_map

    def test_unknown_map_is_flagged_and_position_unknown(self, registry: FleetRegistry) -> None:
        """A pose in a map no facility has: the position is unknown, never guessed."""
        rec = registry.register(ROBOT)
        registry.apply_robot_pose(rec, MapPose("nowhere", 1.0, 2.0, 0.0), live())
        view = registry.get(rec.id)
        assert view is not None
        assert view.unknown_map and view.position is None and view.map_pose is not None


class TestMaintenance:
    def test_maintenance_beats_what_the_vehicle_says(self, registry: FleetRegistry) -> None:
        """An operator's maintenance flag wins over an idle robot, and is undone."""
        rec = registry.register(ROBOT)
        registry.apply_robot_state(rec, IDLE_ROBOT, live())
        registry.set_maintenance(rec, True, 1001.0)
        assert rec.status is VehicleStatus.MAINTENANCE
        registry.set_maintenance(rec, False, 1002.0)
        assert rec.status is VehicleStatus.IDLE


class TestDirtyTracking:
    def test_each_consumer_sees_each_change_once(self, registry: FleetRegistry) -> None:
        """A change is handed to each writer once."""
        rec = registry.register(ROBOT)
        registry.apply_robot_pose(rec, MapPose("campus", 1.0, 1.0, 0.0), live())
        assert [r.id for r in registry.take_dirty(Consumer.GEO)] == [rec.id]
        assert registry.take_dirty(Consumer.GEO) == []
        assert [r.id for r in registry.take_dirty(Consumer.POSITIONS)] == [rec.id]

    def test_failed_write_is_put_back(self, registry: FleetRegistry) -> None:
        """Records a failed write took go again with the next batch."""
        rec = registry.register(ROBOT)
        taken = registry.take_dirty(Consumer.VEHICLES)
        registry.mark_dirty(Consumer.VEHICLES, taken)
        assert [r.id for r in registry.take_dirty(Consumer.VEHICLES)] == [rec.id]

    def test_requeued_changes_keep_their_order(self, registry: FleetRegistry) -> None:
        """Changes a failed write took go back ahead of newer ones."""
        rec = registry.register(ROBOT)
        registry.apply_sign_of_life(rec, live())
        first = registry.drain_changes()
        warning = (VehicleError("x", "WARNING"),)
        registry.apply_robot_state(rec, robot_state(errors=warning), live(1001.0))
        registry.requeue_changes(first)
        events = kinds(registry)
        assert events[: len(first)] == [c.kind for c in first]
        assert events[-1] is ChangeKind.ERROR_RAISED


class TestChangeFeed:
    def test_listeners_see_each_change_as_it_happens(self, registry: FleetRegistry) -> None:
        """A listener (the metrics at the edge) is told once, even if a write requeues it."""
        seen: list[FleetChange] = []
        registry.subscribe(seen.append)
        rec = registry.register(ROBOT)
        registry.apply_sign_of_life(rec, live())
        assert [c.kind for c in seen] == [
            ChangeKind.REGISTERED,
            ChangeKind.WENT_ONLINE,
            ChangeKind.STATUS_CHANGED,
        ]
        registry.requeue_changes(registry.drain_changes())
        assert len(seen) == 3 and registry.pending_changes == 3

    def test_oldest_changes_are_dropped_beyond_the_bound(self) -> None:
        """While nobody drains it, the feed keeps the newest changes and counts the rest."""
        feed = ChangeFeed(max_pending=2)
        changes = [
            FleetChange(ROBOT.id, ROBOT.id, ChangeKind.STATUS_CHANGED, {"n": n}, float(n))
            for n in range(5)
        ]
        for change in changes:
            feed.append(change)
        assert feed.drain() == changes[3:]
        assert feed.dropped == 3

    def test_change_kinds_are_what_storage_accepts(self) -> None:
        """Every change kind is a value the ``vehicle_events.event`` CHECK allows."""
        migration = resources.files("dispatcher.storage").joinpath("migrations/0001_core.sql")
        sql = migration.read_text(encoding="utf-8")
        check = re.search(r"event\s+text NOT NULL CHECK \(event IN \(([^)]*)\)", sql)
        assert check is not None
        allowed = set(re.findall(r"'(\w+)'", check.group(1)))
        assert {k.value for k in ChangeKind} == allowed


class TestSnapshot:
    def test_snapshot_is_immutable_and_reuses_unchanged_views(
        self, registry: FleetRegistry
    ) -> None:
        """Unchanged vehicles keep their view object; a changed one gets a new one."""
        a = registry.register(ROBOT)
        registry.register(DRIVER)
        first = registry.snapshot()
        second = registry.snapshot()
        assert len(first) == 2
        assert first[0] is second[0]
        registry.apply_sign_of_life(a, live())
        third = registry.snapshot()
        changed = next(v for v in third if v.id == a.id)
        assert changed.online and changed is not next(v for v in first if v.id == a.id)

    def test_select_builds_views_only_for_the_vehicles_it_keeps(
        self, registry: FleetRegistry
    ) -> None:
        """``select`` asks the live records; a vehicle it passes over gets no view."""
        robot = registry.register(ROBOT)
        driver = registry.register(DRIVER)
        registry.apply_sign_of_life(robot, live())
        kept = registry.select(lambda v: v.key.kind is ROBOT.kind and v.online)
        assert [v.id for v in kept] == [robot.id]
        assert kept[0] == next(v for v in registry.snapshot() if v.id == robot.id)
        driver.view = None
        registry.select(lambda v: False)
        assert driver.view is None  # nothing built for a vehicle not kept
