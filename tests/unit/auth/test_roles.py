"""The role/permission matrix is exactly the one docs/api.md documents."""

from __future__ import annotations

import uuid

import pytest

from dispatcher.auth.principal import Principal
from dispatcher.auth.roles import ROLE_PERMISSIONS, Permission, Role, has_permission, parse_role

P = Permission

# One row per permission: which roles hold it (A admin, O operator, N nurse, C caregiver,
# M maintenance, G guest). Keep in step with the table in docs/api.md.
MATRIX: dict[Permission, str] = {
    P.FLEET_SUMMARY: "A O . . M G",
    P.FLEET_VIEW: "A O . . M .",
    P.VEHICLE_COMMAND: "A O . . . .",
    P.VEHICLE_DIAGNOSTICS: "A . . . M .",
    P.VEHICLE_MAINTENANCE: "A . . . M .",
    P.MISSION_CREATE: "A O N C . .",
    P.MISSION_VIEW_ALL: "A O N . . .",
    P.MISSION_VIEW_OWN: "A O N C . .",
    P.MISSION_CANCEL_ANY: "A O . . . .",
    P.MISSION_CANCEL_OWN: "A O N C . .",
    P.MISSION_PRIORITIZE: "A O . . . .",
    P.ZONE_VIEW: "A O . . . .",
    P.ZONE_MANAGE: "A O . . . .",
    P.EVENTS_VIEW: "A O . . . .",
    P.AUDIT_VIEW: "A . . . . .",
}
COLUMNS = (Role.ADMIN, Role.OPERATOR, Role.NURSE, Role.CAREGIVER, Role.MAINTENANCE, Role.GUEST)


def _expected(permission: Permission, role: Role) -> bool:
    return MATRIX[permission].split()[COLUMNS.index(role)] != "."


class TestMatrix:
    def test_every_permission_has_a_row(self) -> None:
        """The table above covers every permission, so a new one cannot slip in unreviewed."""
        assert set(MATRIX) == set(Permission)

    def test_every_role_has_an_entry(self) -> None:
        assert set(ROLE_PERMISSIONS) == set(Role)

    @pytest.mark.parametrize("role", list(Role))
    @pytest.mark.parametrize("permission", list(Permission))
    def test_role_grants_exactly_the_documented_permissions(
        self, role: Role, permission: Permission
    ) -> None:
        assert has_permission(role, permission) is _expected(permission, role)

    def test_admin_has_everything(self) -> None:
        assert ROLE_PERMISSIONS[Role.ADMIN] == frozenset(Permission)

    def test_guest_sees_only_the_summary(self) -> None:
        assert ROLE_PERMISSIONS[Role.GUEST] == {P.FLEET_SUMMARY}

    @pytest.mark.parametrize(
        ("any_", "own"),
        [(P.MISSION_CANCEL_ANY, P.MISSION_CANCEL_OWN), (P.MISSION_VIEW_ALL, P.MISSION_VIEW_OWN)],
    )
    def test_any_implies_own(self, any_: Permission, own: Permission) -> None:
        """A role that may act on every mission may act on its own."""
        for role, perms in ROLE_PERMISSIONS.items():
            if any_ in perms:
                assert own in perms, role

    def test_fleet_view_implies_summary(self) -> None:
        for role, perms in ROLE_PERMISSIONS.items():
            if P.FLEET_VIEW in perms:
                assert P.FLEET_SUMMARY in perms, role


class TestParseRole:
    def test_accepts_any_case(self) -> None:
        assert parse_role(" Operator ") is Role.OPERATOR

    def test_unknown_role_lists_the_valid_ones(self) -> None:
        with pytest.raises(ValueError, match="expected one of: admin, operator"):
            parse_role("superuser")


class TestPrincipal:
    facility = uuid.uuid4()

    def test_can_follows_the_role(self) -> None:
        p = Principal(uuid.uuid4(), Role.NURSE, self.facility)
        assert p.can(P.MISSION_CREATE)
        assert not p.can(P.FLEET_VIEW)

    def test_scoped_principal_sees_only_its_facility(self) -> None:
        p = Principal(uuid.uuid4(), Role.OPERATOR, self.facility)
        assert p.sees_facility(self.facility)
        assert not p.sees_facility(uuid.uuid4())

    def test_unscoped_principal_sees_every_facility(self) -> None:
        p = Principal(uuid.uuid4(), Role.ADMIN, None)
        assert p.sees_facility(uuid.uuid4())

    def test_subject_is_the_user_when_there_is_one(self) -> None:
        token, user = uuid.uuid4(), uuid.uuid4()
        assert Principal(token, Role.NURSE, self.facility).subject == str(token)
        assert Principal(token, Role.NURSE, self.facility, user).subject == str(user)
