"""Errors of the missions package. Data travels as attributes; messages are for people.

The API translates each into a problem document (see ``dispatcher/api/routes/missions.py``):
:class:`InvalidMission` and :class:`InvalidCursor` -> 422, :class:`MissionNotFound` -> 404,
:class:`~dispatcher.missions.lifecycle.IllegalTransition`, :class:`VersionConflict` and
:class:`IdempotencyConflict` -> 409.
"""

from __future__ import annotations

import uuid


class MissionError(Exception):
    """Base of the errors the missions package raises on purpose."""


class InvalidMission(MissionError):
    """Input that is well-formed but wrong here (unknown place, facility, vehicle).

    ``field`` is the dotted field name as the client wrote it (``pickup.place``).
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class InvalidCursor(MissionError):
    """The ``cursor`` a client sent back is not one this API made."""


class MissionNotFound(MissionError):
    """No such mission, or not one the caller may see (the two are not told apart)."""

    def __init__(self, mission_id: uuid.UUID) -> None:
        self.mission_id = mission_id
        super().__init__(f"mission {mission_id} not found")


class VersionConflict(MissionError):
    """The mission changed since the caller read it (optimistic concurrency)."""

    def __init__(self, mission_id: uuid.UUID, expected: int, actual: int) -> None:
        self.mission_id = mission_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"mission {mission_id} is at version {actual}, the change expected {expected}"
        )


class IdempotencyConflict(MissionError):
    """An idempotency key was reused with a different request body."""

    def __init__(self, key: str, mission_id: uuid.UUID) -> None:
        self.key = key
        self.mission_id = mission_id
        super().__init__(
            f"idempotency key {key!r} was already used for a different request "
            f"(mission {mission_id})"
        )


class WrongVehicle(MissionError):
    """A vehicle reported on a mission that is assigned to another vehicle."""

    def __init__(self, mission_id: uuid.UUID, assigned: uuid.UUID, reported: uuid.UUID) -> None:
        self.mission_id = mission_id
        self.assigned = assigned
        self.reported = reported
        super().__init__(f"mission {mission_id} is assigned to vehicle {assigned}, not {reported}")
