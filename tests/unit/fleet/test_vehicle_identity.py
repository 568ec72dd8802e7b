"""Vehicle identity (issue 13 item 4), facility pinning (item 7) and the per-vehicle
history budget (item 9): pure registry and model behaviour, no services."""

# The registry changes its records in place: mypy's narrowing of an attribute checked
# before a call (``assert rec.online``) outlives the call that changes it, and flags the
# checks after it as unreachable.
# mypy: disable-error-code="unreachable, comparison-overlap"

from __future__ import annotations

import uuid

from fleet.model import (
    ChangeKind,
    MapPose,
    OperatingMode,
    VehicleError,
    VehicleKey,
    VehicleKind,
    vehicle_id,
)
from fleet.registry import FleetRegistry
from fleet.reports import Heard, RobotState
from geo.facility import FacilitySpec, MapSpec
from geo.facility_maps import FacilityMaps

A = FacilitySpec(uuid.uuid4(), "site-a", "Site A", "UTC", (MapSpec("map-a", 52.5, 13.4, 0.0),), ())
B = FacilitySpec(uuid.uuid4(), "site-b", "Site B", "UTC", (MapSpec("map-b", 48.1, 11.5, 0.0),), ())
ROBOT = VehicleKey(VehicleKind.ROBOT, "acme", "r1")


def registry(events_per_minute: int = 120) -> FleetRegistry:
    return FleetRegistry(
        maps=FacilityMaps([A, B]),
        default_facility_id=A.id,
        heartbeat_timeout_s=5.0,
        events_per_minute=events_per_minute,
        clock=lambda: 1000.0,
    )


def state(map_id: str, errors: tuple[VehicleError, ...] = ()) -> RobotState:
    return RobotState(
        battery_pct=80.0,
        charging=False,
        working=False,
        driving=False,
        paused=False,
        operating_mode=OperatingMode.AUTOMATIC,
        order_id=None,
        order_update_id=None,
        last_node_id=None,
        errors=errors,
        speed_mps=None,
        pose=MapPose(map_id, 1.0, 2.0, 0.0),
    )


class TestVehicleId:
    def test_colon_in_manufacturer_or_serial_gives_different_ids(self) -> None:
        """``acme:WR/0001`` and ``acme/WR:0001`` are two robots, so two ids."""
        one = vehicle_id(VehicleKind.ROBOT, "acme:WR", "0001")
        other = vehicle_id(VehicleKind.ROBOT, "acme", "WR:0001")
        assert one != other

    def test_id_is_deterministic_and_follows_kind(self) -> None:
        """The same identity always gets the same id; a driver and a robot never share one."""
        assert vehicle_id(VehicleKind.ROBOT, "acme", "x") == vehicle_id(
            VehicleKind.ROBOT, "acme", "x"
        )
        assert vehicle_id(VehicleKind.DRIVER, "", "r1") != vehicle_id(VehicleKind.ROBOT, "", "r1")

    def test_a_retired_vehicle_gets_its_stored_id_back(self) -> None:
        """A soft-deleted vehicle stored under an older derivation keeps its id on return."""
        reg = registry()
        old = uuid.uuid4()
        reg.remember_id(ROBOT, old)
        assert reg.register(ROBOT).id == old


class TestFacilityPinning:
    def test_pinned_robot_cannot_move_to_another_facility(self) -> None:
        """A robot of A reporting B's map stays in A and the report is called foreign."""
        reg = registry()
        rec = reg.register(ROBOT, facility_id=A.id)
        assert reg.foreign_map(rec, "map-b")
        assert not reg.foreign_map(rec, "map-a")
        assert rec.facility_id == A.id

    def test_a_state_on_another_map_does_not_move_the_vehicle(self) -> None:
        """Even if a caller skipped the check, a pose never changes the facility."""
        reg = registry()
        rec = reg.register(ROBOT, facility_id=A.id)
        reg.apply_robot_state(rec, state("map-b"), Heard(1000.0, 1000.0))
        assert rec.facility_id == A.id

    def test_unplaced_robot_is_placed_by_its_first_known_map_then_pinned(self) -> None:
        """Registered on its connection topic (no map yet): the first map places it, once."""
        reg = registry()
        rec = reg.register(ROBOT)
        assert not rec.facility_pinned
        assert not reg.foreign_map(rec, "nowhere")  # an unknown map places nobody
        assert not reg.foreign_map(rec, "map-b")
        assert rec.facility_id == B.id and rec.facility_pinned
        assert reg.foreign_map(rec, "map-a")

    def test_pin_moves_a_vehicle_to_its_configured_facility(self) -> None:
        reg = registry()
        rec = reg.register(ROBOT, facility_id=A.id)
        reg.pin(rec, B.id)
        assert rec.facility_id == B.id
        view = reg.get(rec.id)
        assert view is not None and view.facility_id == B.id


class TestHistoryBudget:
    def test_flapping_errors_are_bounded_per_vehicle(self) -> None:
        """Errors raised and cleared on every message: history stops at the budget."""
        reg = registry(events_per_minute=10)
        rec = reg.register(ROBOT, facility_id=A.id)
        reg.drain_changes()
        err = (VehicleError("laserBlocked", "WARNING"),)
        for i in range(100):
            reg.apply_robot_state(rec, state("map-a", err if i % 2 else ()), Heard(1000.0, 1000.0))
        recorded = reg.drain_changes()
        assert len(recorded) == 10
        assert reg.events_suppressed > 0
        assert rec.errors == err  # the live state stays exact

    def test_budget_refills_with_time(self) -> None:
        now = [1000.0]
        reg = FleetRegistry(
            maps=FacilityMaps([A]),
            default_facility_id=A.id,
            heartbeat_timeout_s=5.0,
            events_per_minute=2,
            clock=lambda: now[0],
        )
        rec = reg.register(ROBOT, facility_id=A.id)
        reg.apply_sign_of_life(rec, Heard(1000.0, 1000.0))
        reg.drain_changes()  # registered, online: the budget has none left
        now[0] += 60.0
        for _ in range(5):
            reg.set_maintenance(rec, not rec.maintenance, now[0])
        assert len(reg.drain_changes()) == 2
        now[0] += 60.0
        reg.set_maintenance(rec, not rec.maintenance, now[0])
        assert [c.kind for c in reg.drain_changes()] == [ChangeKind.STATUS_CHANGED]

    def test_suppressed_changes_still_reach_listeners(self) -> None:
        """Metrics (listeners) see every change; only the history rows are bounded."""
        seen: list[ChangeKind] = []
        reg = registry(events_per_minute=1)
        reg.subscribe(lambda c: seen.append(c.kind))
        rec = reg.register(ROBOT, facility_id=A.id)
        reg.apply_sign_of_life(rec, Heard(1000.0, 1000.0))
        for _ in range(4):
            reg.set_maintenance(rec, not rec.maintenance, 1000.0)
        assert seen.count(ChangeKind.STATUS_CHANGED) >= 4
        # registered (never held back) and going online (the one token); the rest held back
        assert len(reg.drain_changes()) == 2

    def test_registered_is_never_suppressed(self) -> None:
        reg = registry(events_per_minute=1)
        for i in range(3):
            reg.register(VehicleKey(VehicleKind.ROBOT, "acme", f"r{i}"))
        assert [c.kind for c in reg.drain_changes()] == [ChangeKind.REGISTERED] * 3
