"""Messages of another protocol version are refused as version_mismatch (issue 15/17).

VDA 5050 2.0 section 6.4: ``version`` is ``Major.Minor.Patch``; the topic's ``v2`` level
carries the major. The driver protocol's version is ``1.x``. Each class of bad version is
refused, counted by reason, logged once per vehicle and interval, and never raises.
"""

from __future__ import annotations

from typing import Any

import pytest
import structlog

from dispatcher.config import Settings
from dispatcher.links.driver_link import DriverLink
from dispatcher.links.rejections import Rejections
from dispatcher.links.robot_link import RobotLink
from fleet.registry import FleetRegistry
from geo.facility_maps import FacilityMaps
from protocols.errors import MessageRejected, RejectReason
from protocols.vda5050 import codec
from protocols.vda5050.topics import major_of_prefix
from tests.unit.links.test_robot_link_limits import KEY, TOPIC, Rows, build
from tests.unit.protocols import driver_examples as dex
from tests.unit.protocols import vda_examples as vex


def _state(version: Any, header_id: int = 1) -> bytes:
    msg = vex.state_small()
    msg["agvPosition"]["mapId"] = "campus"
    msg.update(version=version, headerId=header_id)
    return vex.encode(msg)


class TestVersionCheck:
    @pytest.mark.parametrize("version", ["2.0.0", "2.1.0", "2.0.17"])
    def test_same_major_is_accepted(self, version: str) -> None:
        codec.VersionCheck(2).check(version)

    def test_a_missing_optional_version_is_accepted(self) -> None:
        codec.VersionCheck(2).check(None)

    @pytest.mark.parametrize(
        ("version", "why"),
        [
            ("9.9.9", "not of major version 2"),  # the simulator's malformed burst
            ("1.1.0", "not of major version 2"),  # an older robot on the v2 topics
            ("3.0.0", "not of major version 2"),
            ("2.0", "not Major.Minor.Patch"),
            ("v2", "not Major.Minor.Patch"),
            ("", "not Major.Minor.Patch"),
            ("2.0.0-beta", "not Major.Minor.Patch"),
            ("2.0.0\n" * 50, "not Major.Minor.Patch"),
        ],
    )
    def test_other_versions_are_refused(self, version: str, why: str) -> None:
        with pytest.raises(MessageRejected) as info:
            codec.VersionCheck(2).check(version)
        assert info.value.reason is RejectReason.VERSION_MISMATCH
        assert why in info.value.detail
        assert len(info.value.detail) < 100  # the hostile value is cut

    def test_major_from_the_prefix(self) -> None:
        assert major_of_prefix("uagv/v2", 2) == 2
        assert major_of_prefix("site/uagv/v3/", 2) == 3
        assert major_of_prefix("robots", 2) == 2  # no v<n> level: the default


class TestRobotLink:
    def test_a_state_of_another_major_version_is_refused(self) -> None:
        link, registry, _ = build()
        link.handle(TOPIC, _state("9.9.9"), False)
        assert link.rejections.counts[RejectReason.VERSION_MISMATCH] == 1
        assert registry.record_by_key(KEY) is None  # nothing it carried was taken

    def test_a_good_state_after_bad_ones_is_taken(self) -> None:
        link, registry, _ = build()
        link.handle(TOPIC, _state("9.9.9", 1), False)
        link.handle(TOPIC, _state("2.0", 2), False)
        link.handle(TOPIC, _state("2.0.0", 3), False)
        assert link.rejections.counts[RejectReason.VERSION_MISMATCH] == 2
        assert registry.record_by_key(KEY) is not None

    def test_a_version_of_the_wrong_type_is_schema_invalid(self) -> None:
        link, _, _ = build()
        link.handle(TOPIC, _state(2), False)
        assert link.rejections.counts[RejectReason.SCHEMA_INVALID] == 1

    @pytest.mark.parametrize(
        ("topic", "make"),
        [
            ("connection", lambda: vex.connection()),
            ("visualization", lambda: vex.visualization()),
            ("factsheet", lambda: vex.factsheet()),
        ],
    )
    def test_every_inbound_message_is_checked(self, topic: str, make: Any) -> None:
        link, _, _ = build()
        msg = make()
        msg["version"] = "9.9.9"
        link.handle(f"uagv/v2/WheelCo/WC-0001/{topic}", vex.encode(msg), False)
        assert link.rejections.counts[RejectReason.VERSION_MISMATCH] == 1

    def test_a_v3_interface_takes_v3_messages(self) -> None:
        settings = Settings(
            mqtt={"vda_major_version": "v3"},
            fleet={"unknown_vehicles": "register"},
        )
        registry = FleetRegistry(
            maps=FacilityMaps(settings.facility_specs),
            default_facility_id=settings.default_facility.id,
            heartbeat_timeout_s=5.0,
        )
        sink = Rows()
        v3 = RobotLink(settings, registry, sink, sink)
        msg = vex.state_small()
        msg.update(version="3.0.0")
        msg.pop("agvPosition")
        v3.handle("uagv/v3/WheelCo/WC-0001/state", vex.encode(msg), False)
        assert v3.rejections.counts[RejectReason.VERSION_MISMATCH] == 0
        msg.update(version="2.0.0", headerId=msg["headerId"] + 1)
        v3.handle("uagv/v3/WheelCo/WC-0001/state", vex.encode(msg), False)
        assert v3.rejections.counts[RejectReason.VERSION_MISMATCH] == 1


class TestDriverLink:
    @pytest.mark.parametrize("version", ["2.0", "1.0.0", "0.9", "x"])
    def test_other_versions_are_refused(self, version: str) -> None:
        settings = Settings(fleet={"unknown_vehicles": "register"})
        registry = FleetRegistry(
            maps=FacilityMaps(settings.facility_specs),
            default_facility_id=settings.default_facility.id,
            heartbeat_timeout_s=5.0,
        )
        sink = Rows()
        link = DriverLink(settings, registry, sink, sink)
        msg = dex.status()
        msg["version"] = version
        link.handle("fleetd/driver/v1/drv-anna/status", dex.encode(msg), False)
        assert link.rejections.counts[RejectReason.VERSION_MISMATCH] == 1
        assert not registry.snapshot()


class TestLoggedOncePerVehicle:
    def test_each_vehicle_is_logged_once_per_interval(self) -> None:
        now = [100.0]
        rejections = Rejections("test", log_interval_s=1.0, clock=lambda: now[0])
        with structlog.testing.capture_logs() as logs:
            for _ in range(5):
                rejections.record(RejectReason.VERSION_MISMATCH, "v", "t/a", subject="m/a")
                rejections.record(RejectReason.VERSION_MISMATCH, "v", "t/b", subject="m/b")
            now[0] += 1.5
            rejections.record(RejectReason.VERSION_MISMATCH, "v", "t/a", subject="m/a")
        assert [(e["vehicle"], e["suppressed_since_last"]) for e in logs] == [
            ("m/a", 0),
            ("m/b", 0),
            ("m/a", 4),
        ]
        assert rejections.counts[RejectReason.VERSION_MISMATCH] == 11


class TestDriverFixes:
    """Implausible driver fixes are not the driver's position (fleet/fixes.py)."""

    def test_an_implausible_fix_keeps_the_last_position_and_is_counted(self) -> None:
        from prometheus_client import REGISTRY

        settings = Settings(fleet={"unknown_vehicles": "register"})
        registry = FleetRegistry(
            maps=FacilityMaps(settings.facility_specs),
            default_facility_id=settings.default_facility.id,
            heartbeat_timeout_s=5.0,
        )
        sink = Rows()
        link = DriverLink(settings, registry, sink, sink)

        def refused() -> float:
            labels = {"kind": "driver", "reason": "accuracy"}
            return REGISTRY.get_sample_value("fleetd_position_fixes_rejected_total", labels) or 0

        before = refused()
        msg = dex.status()
        link.handle("fleetd/driver/v1/drv-anna/status", dex.encode(msg), False)
        (view,) = registry.snapshot()
        good = view.position
        assert good is not None
        bad = {**msg, "headerId": msg["headerId"] + 1, "lat": msg["lat"] + 0.01}
        bad["accuracyM"] = 80.0
        link.handle("fleetd/driver/v1/drv-anna/status", dex.encode(bad), False)
        (view,) = registry.snapshot()
        assert view.position is not None and view.position.lat == good.lat
        assert refused() == before + 1
        assert len(sink.rows) == 1  # the refused fix is no telemetry row either
