"""Who asks for an operation: permissions, scope and how they are recorded."""

from __future__ import annotations

import uuid

import pytest

from dispatcher.auth.principal import Principal
from dispatcher.auth.roles import Permission, Role
from dispatcher.ops.caller import Caller


class TestCaller:
    def test_api_caller_has_its_tokens_rights(self) -> None:
        """An API caller can what its role can, in its facility only."""
        facility = uuid.uuid4()
        caller = Caller.api(Principal(uuid.uuid4(), Role.NURSE, facility), "192.0.2.1")
        assert caller.can(Permission.MISSION_CREATE)
        assert not caller.can(Permission.VEHICLE_COMMAND)
        assert caller.sees_facility(facility)
        assert not caller.sees_facility(uuid.uuid4())
        assert caller.facility_id == facility

    @pytest.mark.parametrize("caller", [Caller.operator("alice"), Caller.system("planner")])
    def test_operator_and_daemon_may_do_everything(self, caller: Caller) -> None:
        """Local operators and the daemon's tasks hold every permission, everywhere."""
        assert all(caller.can(p) for p in Permission)
        assert caller.sees_facility(uuid.uuid4())
        assert caller.facility_id is None
        assert (caller.token_id, caller.role) == (None, None)

    def test_only_the_daemon_goes_unaudited(self) -> None:
        """The daemon's own changes are in mission_events; people are audited."""
        assert not Caller.system().audited
        assert Caller.operator("alice").audited
        assert Caller.operator("alice").source == "cli:alice"

    def test_actor_carries_the_token_and_the_audit_flag(self) -> None:
        """The mission store records the caller as its actor."""
        principal = Principal(uuid.uuid4(), Role.OPERATOR, None)
        actor = Caller.api(principal, "192.0.2.1").actor()
        assert (actor.subject, actor.token_id, actor.role, actor.source, actor.audited) == (
            principal.subject,
            principal.token_id,
            "operator",
            "192.0.2.1",
            True,
        )
        assert Caller.system("planner").actor().subject == "system:planner"
