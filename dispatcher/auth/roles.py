"""Roles and what each may do (pure; the seed is the TVM design).

The matrix lives here and only here: routes ask for a :class:`Permission` (via
``dispatcher.api.deps.require``), never for a role. ``docs/api.md`` shows the same table
for people; ``tests/unit/auth/test_roles.py`` pins it.

Conventions:

- ``*_any`` permissions imply the matching ``*_own`` one (the role table lists both, so a
  route can ``require(MISSION_CANCEL_ANY, MISSION_CANCEL_OWN)`` and then check ownership
  only when the principal lacks ``MISSION_CANCEL_ANY``).
- Seeing vehicles one by one (``fleet_view``) implies seeing the counts (``fleet_summary``).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class Role(StrEnum):
    """A token's role; stored in ``roles.name`` (CHECK-constrained to these values)."""

    ADMIN = "admin"
    OPERATOR = "operator"
    NURSE = "nurse"
    CAREGIVER = "caregiver"
    MAINTENANCE = "maintenance"
    GUEST = "guest"


class Permission(StrEnum):
    """One thing a caller may do through the API."""

    FLEET_SUMMARY = "fleet_summary"  # counts by kind / status / online
    FLEET_VIEW = "fleet_view"  # vehicles list and detail
    VEHICLE_COMMAND = "vehicle_command"  # pause, resume, cancel order, charge, e-stop
    VEHICLE_DIAGNOSTICS = "vehicle_diagnostics"  # errors, factsheet, telemetry
    VEHICLE_MAINTENANCE = "vehicle_maintenance"  # set / clear maintenance mode
    MISSION_CREATE = "mission_create"
    MISSION_VIEW_ALL = "mission_view_all"  # every mission of the facility
    MISSION_VIEW_OWN = "mission_view_own"  # missions the caller created
    MISSION_CANCEL_ANY = "mission_cancel_any"
    MISSION_CANCEL_OWN = "mission_cancel_own"
    MISSION_PRIORITIZE = "mission_prioritize"
    ZONE_VIEW = "zone_view"
    ZONE_MANAGE = "zone_manage"
    EVENTS_VIEW = "events_view"  # the live event stream
    AUDIT_VIEW = "audit_view"


P = Permission

ROLE_DESCRIPTIONS: Mapping[Role, str] = MappingProxyType(
    {
        Role.ADMIN: "Everything, in every facility (the only role a token may hold unscoped).",
        Role.OPERATOR: "Monitors the fleet, dispatches and cancels missions, commands vehicles.",
        Role.NURSE: "Requests transport, sees mission status, cancels own missions.",
        Role.CAREGIVER: "Requests and sees own missions only.",
        Role.MAINTENANCE: "Vehicle diagnostics and maintenance mode.",
        Role.GUEST: "Fleet summary only.",
    }
)

ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = MappingProxyType(
    {
        Role.ADMIN: frozenset(Permission),
        Role.OPERATOR: frozenset(
            {
                P.FLEET_SUMMARY,
                P.FLEET_VIEW,
                P.VEHICLE_COMMAND,
                P.MISSION_CREATE,
                P.MISSION_VIEW_ALL,
                P.MISSION_VIEW_OWN,
                P.MISSION_CANCEL_ANY,
                P.MISSION_CANCEL_OWN,
                P.MISSION_PRIORITIZE,
                P.ZONE_VIEW,
                P.ZONE_MANAGE,
                P.EVENTS_VIEW,
            }
        ),
        Role.NURSE: frozenset(
            {P.MISSION_CREATE, P.MISSION_VIEW_ALL, P.MISSION_VIEW_OWN, P.MISSION_CANCEL_OWN}
        ),
        Role.CAREGIVER: frozenset({P.MISSION_CREATE, P.MISSION_VIEW_OWN, P.MISSION_CANCEL_OWN}),
        Role.MAINTENANCE: frozenset(
            {P.FLEET_SUMMARY, P.FLEET_VIEW, P.VEHICLE_DIAGNOSTICS, P.VEHICLE_MAINTENANCE}
        ),
        Role.GUEST: frozenset({P.FLEET_SUMMARY}),
    }
)


def has_permission(role: Role, permission: Permission) -> bool:
    """Whether ``role`` grants ``permission``."""
    return permission in ROLE_PERMISSIONS[role]


def parse_role(value: str) -> Role:
    """The :class:`Role` named ``value`` (case-insensitive); ValueError lists the valid ones."""
    try:
        return Role(value.strip().lower())
    except ValueError:
        valid = ", ".join(r.value for r in Role)
        raise ValueError(f"unknown role {value!r} (expected one of: {valid})") from None
