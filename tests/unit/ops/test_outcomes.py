"""Pure decisions of the operations: audit actions, refusal reasons, verdicts, counts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from dispatcher.auth.principal import Principal
from dispatcher.auth.roles import Permission, Role
from dispatcher.links.commander import CommandOutcome, CommandResult, VehicleCommand
from dispatcher.links.commands import CommandReason
from dispatcher.missions.domain import Location, MissionRecord
from dispatcher.missions.errors import MissionNotFound, VersionConflict, WrongVehicle
from dispatcher.missions.lifecycle import IllegalTransition, MissionEvent, MissionStatus, Priority
from dispatcher.ops.access import Denial, denial_entry
from dispatcher.ops.caller import Caller
from dispatcher.ops.mission_audit import (
    MissionRefusal,
    action_of,
    change_details,
    refusal_details,
    refusal_of,
)
from dispatcher.ops.vehicles import Verdict, failure_reason, verdict_of
from dispatcher.ops.vehicles import action_of as vehicle_action
from dispatcher.ops.zone_stop import ZoneStopped, candidates_in, unlocated_in
from dispatcher.ops.zones import vertices
from tests.unit.api.fakes import make_vehicle

MID = uuid.uuid4()


def _mission(**changes: object) -> MissionRecord:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    fields: dict[str, object] = dict(
        id=MID,
        facility_id=uuid.uuid4(),
        status=MissionStatus.PENDING,
        priority=Priority.NORMAL,
        pickup=Location(52.5, 13.4),
        dropoff=Location(52.6, 13.4),
        window_start=None,
        window_end=None,
        requirements={},
        passenger_ref=None,
        passenger_name=None,
        notes=None,
        created_by="u",
        vehicle_id=None,
        version=1,
        created_at=now,
        updated_at=now,
        completed_at=None,
    )
    fields.update(changes)
    return MissionRecord(**fields)  # type: ignore[arg-type]


def _result(outcome: CommandOutcome, detail: str = "") -> CommandResult:
    return CommandResult(uuid.uuid4(), VehicleCommand.PAUSE, outcome, "c1", detail)


class TestMissionAudit:
    @pytest.mark.parametrize(
        ("event", "action"),
        [
            (MissionEvent.CANCELLED, "mission.cancel"),
            (MissionEvent.PRIORITY_CHANGED, "mission.prioritize"),
            (MissionEvent.ASSIGNED, "mission.assigned"),
        ],
    )
    def test_action_names(self, event: MissionEvent, action: str) -> None:
        """Audit actions keep the names the trail has always used."""
        assert action_of(event) == action

    def test_refusal_reasons_follow_the_error_type(self) -> None:
        """Each transition error maps to one refusal reason."""
        illegal = IllegalTransition(MissionStatus.CANCELLED, MissionEvent.CANCELLED)
        assert refusal_of(illegal) is MissionRefusal.ILLEGAL_TRANSITION
        assert refusal_of(VersionConflict(MID, 1, 2)) is MissionRefusal.VERSION_CONFLICT
        wrong = WrongVehicle(MID, uuid.uuid4(), uuid.uuid4())
        assert refusal_of(wrong) is MissionRefusal.WRONG_VEHICLE
        assert refusal_of(MissionNotFound(MID)) is MissionRefusal.NOT_FOUND

    def test_refusal_details_say_what_the_mission_was_at(self) -> None:
        """A stale version names both versions; every refusal names the event."""
        details = refusal_details(MissionEvent.CANCELLED, VersionConflict(MID, 1, 3))
        assert details["event"] == "cancelled"
        assert (details["expected_version"], details["version"]) == (1, 3)

    def test_change_details_hold_old_and_new(self) -> None:
        """An applied change records the fields transitions change, before and after."""
        before = _mission()
        after = _mission(status=MissionStatus.CANCELLED, version=2)
        details = change_details(MissionEvent.CANCELLED, 42, before, after)
        assert details["seq"] == 42
        assert (details["old"]["status"], details["new"]["status"]) == ("pending", "cancelled")
        assert details["new"]["version"] == 2


class TestVehicleVerdicts:
    def test_done_is_sent(self) -> None:
        """A command handed to the broker is sent and has no failure reason."""
        result = _result(CommandOutcome.DONE)
        assert verdict_of(result, still_known=True) is Verdict.SENT
        assert failure_reason(result) is None

    def test_retry_is_unreachable(self) -> None:
        """A command not sent now is worth retrying."""
        result = _result(CommandOutcome.RETRY, "vehicle offline")
        assert verdict_of(result, still_known=True) is Verdict.UNREACHABLE
        assert failure_reason(result) == "retry: vehicle offline"

    def test_offline_vehicle_is_its_own_verdict(self) -> None:
        """An offline vehicle is the vehicle's state (409), not the server's (503)."""
        offline = CommandResult(
            uuid.uuid4(),
            VehicleCommand.PAUSE,
            CommandOutcome.RETRY,
            "c1",
            "vehicle offline",
            reason=CommandReason.VEHICLE_OFFLINE,
        )
        assert verdict_of(offline, still_known=True) is Verdict.OFFLINE
        broker = CommandResult(
            uuid.uuid4(),
            VehicleCommand.PAUSE,
            CommandOutcome.RETRY,
            "c1",
            "broker away",
            reason=CommandReason.BROKER_DOWN,
        )
        assert verdict_of(broker, still_known=True) is Verdict.UNREACHABLE

    def test_impossible_depends_on_whether_the_vehicle_is_still_there(self) -> None:
        """Impossible for a vanished vehicle is 'gone', whatever the detail text says."""
        result = _result(CommandOutcome.IMPOSSIBLE, "any text at all")
        assert verdict_of(result, still_known=False) is Verdict.VEHICLE_GONE
        assert verdict_of(result, still_known=True) is Verdict.NOT_APPLICABLE

    @pytest.mark.parametrize(
        ("command", "action"),
        [
            (VehicleCommand.CANCEL_ORDER, "vehicle.cancel_order"),
            (VehicleCommand.EMERGENCY_STOP, "vehicle.emergency_stop"),
            (VehicleCommand.MAINTENANCE_ON, "vehicle.maintenance"),
            (VehicleCommand.MAINTENANCE_OFF, "vehicle.maintenance"),
        ],
    )
    def test_action_names(self, command: VehicleCommand, action: str) -> None:
        """Both maintenance switches are one audit action."""
        assert vehicle_action(command) == action


class TestZoneStop:
    def test_counts_and_retry(self) -> None:
        """Stopped counts sent e-stops; one retry makes the whole stop worth repeating."""
        done = ZoneStopped(
            uuid.uuid4(),
            uuid.uuid4(),
            (_result(CommandOutcome.DONE), _result(CommandOutcome.RETRY)),
            (),
        )
        assert (done.stopped, done.not_stopped, done.retry) == (1, 1, True)

    def test_unlocated_are_online_unplaced_vehicles_of_the_facility(self) -> None:
        """Only online vehicles of that facility without a position, that the caller sees."""
        north, south = uuid.uuid4(), uuid.uuid4()
        lost = make_vehicle(north, "lost", lat=None, lon=None)
        fleet = (
            lost,
            make_vehicle(north, "placed"),
            make_vehicle(north, "off", lat=None, lon=None, online=False),
            make_vehicle(south, "elsewhere", lat=None, lon=None),
        )
        assert unlocated_in(fleet, Caller.system(), north) == (lost.id,)
        scoped = Caller.api(Principal(uuid.uuid4(), Role.OPERATOR, south), None)
        assert unlocated_in(fleet, scoped, north) == ()

    def test_candidates_are_of_the_zone_facility_even_for_an_admin(self) -> None:
        """Issue 13, item 19: an admin's zone e-stop spares other facilities' vehicles."""
        north, south = uuid.uuid4(), uuid.uuid4()
        here = make_vehicle(north, "here")
        fleet = (
            here,
            make_vehicle(south, "same-spot-other-campus"),
            make_vehicle(north, "lost", lat=None, lon=None),
            make_vehicle(north, "off", online=False),
        )
        assert candidates_in(fleet, Caller.system(), north) == (here,)
        admin = Caller.api(Principal(uuid.uuid4(), Role.ADMIN, None), None)
        assert candidates_in(fleet, admin, north) == (here,)
        scoped = Caller.api(Principal(uuid.uuid4(), Role.OPERATOR, south), None)
        assert candidates_in(fleet, scoped, north) == ()


class TestZones:
    def test_vertices_count_every_ring(self) -> None:
        """Positions are counted over shells and holes of every polygon."""
        ring = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]
        assert vertices({"type": "Polygon", "coordinates": [ring, ring]}) == 8
        assert vertices({"type": "MultiPolygon", "coordinates": [[ring], [ring]]}) == 8


class TestDenial:
    def test_denied_caller_is_named(self) -> None:
        """A 403's row names the caller's token, role and facility."""
        facility = uuid.uuid4()
        caller = Caller.api(Principal(uuid.uuid4(), Role.GUEST, facility), "192.0.2.9")
        row = denial_entry(
            Denial(
                reason="forbidden",
                route="GET /v1/zones",
                method="GET",
                path="/v1/zones",
                required={Permission.ZONE_VIEW},
                source="192.0.2.9",
                caller=caller,
            )
        )
        assert (row.actor_token_id, row.actor_role, row.facility_id, row.success) == (
            caller.token_id,
            "guest",
            facility,
            False,
        )
        assert row.details == {"method": "GET", "path": "/v1/zones", "required": ["zone_view"]}
