"""The simulator starts robots on the default campus's layout nodes."""

from __future__ import annotations

from dispatcher.config import Settings
from dispatcher.facility_layouts import load_facility
from sim.fleet import FleetPlan, build_fleet, start_nodes


class TestStartNodes:
    def test_robots_start_on_chargers_then_stations(self) -> None:
        """Twelve robots on the campus park on its twelve chargers, each on its node."""
        settings = Settings()
        facility = settings.default_facility
        doc = load_facility(facility, None).documents[0]
        nodes = start_nodes(doc, facility.maps[0].map_id)
        robots, _ = build_fleet(settings, FleetPlan(robots=12, drivers=0, start_nodes=nodes))
        chargers = {n for s in doc.charging_stations() for n in s.interaction_node_ids}
        assert {r.last_node_id for r in robots} == chargers
        for r in robots:
            node = doc.nodes[r.last_node_id]
            assert (r.x, r.y) == (node.x, node.y)
            assert r.state_message()["lastNodeId"] == node.node_id

    def test_without_layout_a_grid(self) -> None:
        """With no start nodes robots still get distinct grid positions and no node."""
        robots, _ = build_fleet(Settings(), FleetPlan(robots=4, drivers=0))
        assert len({(r.x, r.y) for r in robots}) == 4
        assert all(r.last_node_id == "" for r in robots)

    def test_batteries_start_in_the_range_asked_for(self) -> None:
        """``--battery-start 90 100`` (the fault suite's): no robot starts low."""
        plan = FleetPlan(robots=20, drivers=0, battery_start=(90.0, 100.0))
        robots, _ = build_fleet(Settings(), plan)
        assert all(90.0 <= r.battery <= 100.0 for r in robots)
