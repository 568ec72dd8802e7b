"""Who is calling: the authenticated identity behind an API token (pure)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from dispatcher.auth.roles import ROLE_PERMISSIONS, Permission, Role


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``facility_id`` is None only for admin tokens, which see every facility.
    Re-exported by :mod:`dispatcher.api.deps`, which is where routes import it from.
    """

    token_id: uuid.UUID
    role: Role
    facility_id: uuid.UUID | None
    user_id: uuid.UUID | None = None

    def can(self, permission: Permission) -> bool:
        """Whether this principal's role grants ``permission``."""
        return permission in ROLE_PERMISSIONS[self.role]

    def sees_facility(self, facility_id: uuid.UUID) -> bool:
        """Whether data of ``facility_id`` is visible to (and changeable by) this principal."""
        return self.facility_id is None or self.facility_id == facility_id

    @property
    def subject(self) -> str:
        """Stable id of the caller: the user id when the token belongs to one, else the token id.

        Stored as ``missions.created_by`` and compared for the ``*_own`` permissions.
        """
        return str(self.user_id if self.user_id is not None else self.token_id)
