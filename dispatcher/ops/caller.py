"""Who asks for an operation: an API token, a local operator at the CLI, or the daemon."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from dispatcher.auth.principal import Principal
from dispatcher.auth.roles import Permission
from dispatcher.missions.domain import Actor


@dataclass(frozen=True, slots=True)
class Caller:
    """The subject of an operation, what it may do and where it comes from.

    An API caller holds a :class:`Principal` (its token's role and facility). A local
    operator (the ``fleetd`` CLI, with direct database access) and the daemon's own tasks
    hold none: they may do everything in every facility. API callers and operators are
    audited; the daemon's tasks are not (their mission changes are in ``mission_events``).
    """

    subject: str
    principal: Principal | None = None
    #: The client address (API) or ``cli:<user>`` (operator); the audit ``source``.
    source: str | None = None
    audited: bool = True

    @classmethod
    def api(cls, principal: Principal, source: str | None) -> Caller:
        """An authenticated API token."""
        return cls(subject=principal.subject, principal=principal, source=source)

    @classmethod
    def operator(cls, user: str) -> Caller:
        """A person at the ``fleetd`` command line of a machine with database access."""
        return cls(subject=f"cli:{user}", source=f"cli:{user}")

    @classmethod
    def system(cls, name: str = "dispatcher") -> Caller:
        """One of the daemon's own tasks (the dispatch engine, a vehicle link)."""
        return cls(subject=f"system:{name}", audited=False)

    @property
    def token_id(self) -> uuid.UUID | None:
        return self.principal.token_id if self.principal is not None else None

    @property
    def role(self) -> str | None:
        return self.principal.role.value if self.principal is not None else None

    @property
    def facility_id(self) -> uuid.UUID | None:
        """The one facility the caller is limited to; None for every facility."""
        return self.principal.facility_id if self.principal is not None else None

    def can(self, permission: Permission) -> bool:
        """Whether the caller holds ``permission`` (operators and the daemon hold all)."""
        return self.principal is None or self.principal.can(permission)

    def sees_facility(self, facility_id: uuid.UUID) -> bool:
        """Whether data of ``facility_id`` is visible to (and changeable by) the caller."""
        return self.principal is None or self.principal.sees_facility(facility_id)

    def actor(self) -> Actor:
        """The caller as the mission store records it (``mission_events.actor``)."""
        return Actor(
            subject=self.subject,
            token_id=self.token_id,
            role=self.role,
            source=self.source,
            audited=self.audited,
        )
