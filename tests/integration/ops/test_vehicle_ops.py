"""Vehicle and zone e-stop operations: their audit rows in real Postgres.

The fleet is a fixed view and the commander answers as the test says (both doubles of
fleetd's own interfaces); what is checked is what the operations decide and record.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import asyncpg

from dispatcher.auth.roles import Role
from dispatcher.links.commander import CommandOutcome, CommandResult, VehicleCommand
from dispatcher.ops.vehicles import (
    CommandAttempt,
    VehicleOps,
    VehicleRefusal,
    VehicleRefused,
    Verdict,
)
from dispatcher.ops.zone_stop import ZoneStopOps, ZoneStopped, ZoneStopRefusal, ZoneStopRefused
from dispatcher.ops.zones import ZoneOps, ZoneRequest
from dispatcher.storage.zones_store import ZoneRecord
from geo.zones import ZoneKind
from tests.integration.ops.conftest import NORTH, SOUTH, api_caller, audit_rows
from tests.unit.api.fakes import StaticFleet, make_vehicle

SQUARE = [[13.40, 52.52], [13.41, 52.52], [13.41, 52.53], [13.40, 52.53], [13.40, 52.52]]


class AnsweringCommander:
    """Answers every command with ``outcome``; maintenance switches flip the fleet's flag."""

    def __init__(self, fleet: StaticFleet, outcome: CommandOutcome = CommandOutcome.DONE) -> None:
        self.fleet = fleet
        self.outcome = outcome
        self.sent: list[tuple[uuid.UUID, VehicleCommand]] = []

    async def command(self, vehicle_id: uuid.UUID, command: VehicleCommand) -> CommandResult:
        self.sent.append((vehicle_id, command))
        view = self.fleet.get(vehicle_id)
        if view is None:
            return CommandResult(
                vehicle_id, command, CommandOutcome.IMPOSSIBLE, "c0", "unknown vehicle"
            )
        if command in (VehicleCommand.MAINTENANCE_ON, VehicleCommand.MAINTENANCE_OFF):
            on = command is VehicleCommand.MAINTENANCE_ON
            self.fleet.vehicles[vehicle_id] = replace(view, maintenance=on)
        sent = {"topic": f"t/{view.name}", "header_id": 1}
        return CommandResult(vehicle_id, command, self.outcome, uuid.uuid4().hex, "", sent)


async def _store_vehicle(pool: asyncpg.Pool, vehicle_id: uuid.UUID, serial: str) -> None:
    await pool.execute(
        "INSERT INTO vehicles (id, facility_id, kind, manufacturer, serial) "
        "VALUES ($1, $2, 'robot', 'acme', $3)",
        vehicle_id,
        NORTH.id,
        serial,
    )


class TestCommand:
    async def test_sent_command_is_audited(self, pool: asyncpg.Pool) -> None:
        """A command handed to the broker has a vehicle.<command> row with its wire ids."""
        robot = make_vehicle(NORTH.id, "r1")
        fleet = StaticFleet([robot])
        ops = VehicleOps(pool, fleet, AnsweringCommander(fleet))
        outcome = await ops.command(
            api_caller(Role.OPERATOR), robot.id, VehicleCommand.PAUSE, reason="blocking exit"
        )
        assert isinstance(outcome, CommandAttempt)
        assert outcome.verdict is Verdict.SENT
        [row] = await audit_rows(pool)
        assert (row.action, row.success, row.resource_id, row.facility_id) == (
            "vehicle.pause",
            True,
            str(robot.id),
            NORTH.id,
        )
        assert (row.details["topic"], row.details["reason"]) == ("t/r1", "blocking exit")

    async def test_unreachable_vehicle_is_audited_as_failed(self, pool: asyncpg.Pool) -> None:
        """A command not sent now is a retry verdict and a failed row."""
        robot = make_vehicle(NORTH.id, "r1")
        fleet = StaticFleet([robot])
        ops = VehicleOps(pool, fleet, AnsweringCommander(fleet, CommandOutcome.RETRY))
        outcome = await ops.command(api_caller(Role.OPERATOR), robot.id, VehicleCommand.CHARGE)
        assert isinstance(outcome, CommandAttempt)
        assert outcome.verdict is Verdict.UNREACHABLE
        [row] = await audit_rows(pool)
        assert (row.action, row.success, row.reason) == ("vehicle.charge", False, "retry: ")

    async def test_no_links_is_refused_and_audited(self, pool: asyncpg.Pool) -> None:
        """Without vehicle links nothing is sent; the refusal is audited."""
        robot = make_vehicle(NORTH.id, "r1")
        ops = VehicleOps(pool, StaticFleet([robot]), None)
        outcome = await ops.command(api_caller(Role.OPERATOR), robot.id, VehicleCommand.RESUME)
        assert outcome == VehicleRefused(VehicleRefusal.NO_LINKS, robot.id)
        [row] = await audit_rows(pool)
        assert (row.action, row.reason) == ("vehicle.resume", "commander_unavailable")

    async def test_other_facility_vehicle_is_not_found(self, pool: asyncpg.Pool) -> None:
        """A vehicle of another facility does not exist for the caller, and nothing is sent."""
        robot = make_vehicle(SOUTH.id, "r1")
        fleet = StaticFleet([robot])
        commander = AnsweringCommander(fleet)
        ops = VehicleOps(pool, fleet, commander)
        outcome = await ops.command(
            api_caller(Role.OPERATOR), robot.id, VehicleCommand.EMERGENCY_STOP
        )
        assert outcome == VehicleRefused(VehicleRefusal.NOT_FOUND, robot.id)
        assert commander.sent == []
        [row] = await audit_rows(pool)
        assert (row.action, row.reason) == ("vehicle.emergency_stop", "not_found")


class TestMaintenance:
    async def test_switch_is_stored_and_audited(self, pool: asyncpg.Pool) -> None:
        """Maintenance on is stored in the vehicles table and audited with old and new."""
        robot = make_vehicle(NORTH.id, "r1")
        await _store_vehicle(pool, robot.id, "r1")
        fleet = StaticFleet([robot])
        ops = VehicleOps(pool, fleet, AnsweringCommander(fleet))
        outcome = await ops.set_maintenance(api_caller(Role.MAINTENANCE), robot.id, True)
        assert isinstance(outcome, CommandAttempt)
        assert outcome.maintenance is True
        stored = await pool.fetchval("SELECT maintenance FROM vehicles WHERE id = $1", robot.id)
        assert stored is True
        [row] = await audit_rows(pool)
        assert (row.action, row.details["old"], row.details["new"]) == (
            "vehicle.maintenance",
            {"maintenance": False},
            {"maintenance": True},
        )


class TestZoneStop:
    async def _zone(self, pool: asyncpg.Pool) -> ZoneRecord:
        request = ZoneRequest(
            name="atrium",
            kind=ZoneKind.NO_GO,
            geometry={"type": "Polygon", "coordinates": [SQUARE]},
            speed_limit_mps=None,
        )
        zone = await ZoneOps(pool).create(api_caller(Role.OPERATOR), request)
        assert isinstance(zone, ZoneRecord)
        return zone

    async def test_vehicles_inside_are_stopped_and_audited(self, pool: asyncpg.Pool) -> None:
        """One row per stopped vehicle and one for the zone; outside and unlocated are not."""
        zone = await self._zone(pool)
        inside = make_vehicle(NORTH.id, "in", lat=52.525, lon=13.405)
        outside = make_vehicle(NORTH.id, "out", lat=52.60, lon=13.405)
        lost = make_vehicle(NORTH.id, "lost", lat=None, lon=None)
        fleet = StaticFleet([inside, outside, lost])
        commander = AnsweringCommander(fleet)
        ops = ZoneStopOps(pool, fleet, commander)
        outcome = await ops.emergency_stop(api_caller(Role.OPERATOR), zone.id, reason="smoke")
        assert isinstance(outcome, ZoneStopped)
        assert commander.sent == [(inside.id, VehicleCommand.EMERGENCY_STOP)]
        assert (outcome.stopped, outcome.unlocated, outcome.retry) == (1, (lost.id,), False)
        rows = (await audit_rows(pool))[1:]  # after zone.create
        assert [(r.action, r.resource_id, r.success) for r in rows] == [
            ("vehicle.emergency_stop", str(inside.id), True),
            ("zone.emergency_stop", str(zone.id), True),
        ]
        assert rows[0].details["zone_id"] == str(zone.id)
        assert rows[1].details["unlocated"] == [str(lost.id)]

    async def test_unknown_zone_is_refused_and_audited(self, pool: asyncpg.Pool) -> None:
        """An e-stop of a zone that does not exist is refused, audited, and sends nothing."""
        fleet = StaticFleet([make_vehicle(NORTH.id, "r1")])
        commander = AnsweringCommander(fleet)
        zone_id = uuid.uuid4()
        outcome = await ZoneStopOps(pool, fleet, commander).emergency_stop(
            api_caller(Role.OPERATOR), zone_id
        )
        assert outcome == ZoneStopRefused(ZoneStopRefusal.NOT_FOUND, zone_id)
        assert commander.sent == []
        [row] = await audit_rows(pool)
        assert (row.action, row.reason) == ("zone.emergency_stop", "not_found")
