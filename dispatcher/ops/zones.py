"""Zone operations: create (GeoJSON) and delete (soft), each with its audit row.

Creation and deletion commit with their audit row (deletion records the zone as it was);
refusals (another facility, an invalid geometry, a name taken, an unknown zone) are
audited too. Input that names no usable facility is refused as :attr:`INVALID`, unaudited,
like any malformed request.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import asyncpg
import structlog

from dispatcher.auth.roles import Permission
from dispatcher.ops import audit
from dispatcher.ops.caller import Caller
from dispatcher.storage.zones_store import ZoneDraft, ZoneNameTaken, ZoneRecord, ZoneStore
from geo.zones import GeometryError, ZoneKind, validate_geometry

log = structlog.get_logger(__name__)


class ZoneRefusal(StrEnum):
    """Why a zone operation was refused (the audit ``reason``)."""

    #: A facility reference that is missing, unknown or contradicts another; not audited.
    INVALID = "invalid"
    OTHER_FACILITY = "other_facility"
    INVALID_GEOMETRY = "invalid_geometry"
    NAME_TAKEN = "name_taken"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"


@dataclass(frozen=True, slots=True)
class ZoneRefused:
    """A refused zone operation; ``field`` and ``message`` say what input was wrong."""

    reason: ZoneRefusal
    field: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class FacilityInput:
    """A facility reference (key or id) and the input it came from (``body.facility``)."""

    field: str
    ref: str
    #: How the input is named to the caller in a message (``?facility=``).
    shown: str


@dataclass(frozen=True, slots=True)
class ZoneRequest:
    """A zone to create, as the caller described it.

    ``facilities`` are the facility references the caller gave; they must agree. With
    none, the caller's own facility is used.
    """

    name: str
    kind: ZoneKind
    geometry: dict[str, Any]
    speed_limit_mps: float | None
    facilities: Sequence[FacilityInput] = ()


def vertices(geometry: dict[str, Any]) -> int:
    """Positions over every ring of a Polygon or MultiPolygon."""
    coords = geometry.get("coordinates") or []
    polygons = [coords] if geometry.get("type") == "Polygon" else coords
    return sum(len(ring) for poly in polygons for ring in poly)


class ZoneOps:
    """Zone changes over the zone store."""

    def __init__(
        self, pool: asyncpg.Pool, on_change: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self._pool = pool
        self._store = ZoneStore(pool)
        #: Awaited after a create or delete commits, before the caller is answered: the
        #: route graphs apply the change (:mod:`dispatcher.route_zones`).
        self._on_change = on_change

    async def create(self, caller: Caller, request: ZoneRequest) -> ZoneRecord | ZoneRefused:
        """Create a zone in the facility the request names (or the caller's own)."""
        target = await self._target(caller, request.facilities)
        if isinstance(target, ZoneRefused):
            return target
        if not caller.can(Permission.ZONE_MANAGE):
            return await self._refuse(caller, "zone.create", ZoneRefused(ZoneRefusal.FORBIDDEN))
        if not caller.sees_facility(target):
            refused = ZoneRefused(ZoneRefusal.OTHER_FACILITY)
            details = {"facility_id": str(target)}
            return await self._refuse(caller, "zone.create", refused, details=details)
        try:
            geometry = validate_geometry(request.geometry)
        except GeometryError as exc:
            refused = ZoneRefused(ZoneRefusal.INVALID_GEOMETRY, exc.field, exc.message)
            details = {"name": request.name, "field": exc.field, "message": exc.message}
            return await self._refuse(caller, "zone.create", refused, target, details)
        draft = ZoneDraft(
            facility_id=target,
            name=request.name,
            kind=request.kind,
            geometry=geometry,
            speed_limit_mps=request.speed_limit_mps,
            created_by=caller.subject,
        )
        return await self._insert(caller, draft)

    async def _insert(self, caller: Caller, draft: ZoneDraft) -> ZoneRecord | ZoneRefused:
        try:
            async with self._store.transaction() as conn:
                zone = await self._store.create(draft, conn=conn)
                if caller.audited:
                    row = audit.entry(
                        caller,
                        action="zone.create",
                        resource_type="zone",
                        resource_id=str(zone.id),
                        success=True,
                        facility_id=zone.facility_id,
                        details={"new": zone.summary()},
                    )
                    await audit.append(conn, row)
        except ZoneNameTaken as exc:
            refused = ZoneRefused(ZoneRefusal.NAME_TAKEN, "body.name", str(exc))
            details = {"name": draft.name}
            return await self._refuse(caller, "zone.create", refused, draft.facility_id, details)
        log.info(
            "zone.created",
            zone_id=str(zone.id),
            facility_id=str(zone.facility_id),
            kind=zone.kind.value,
            vertices=vertices(zone.geometry),
        )
        if self._on_change is not None:
            await self._on_change()
        return zone

    async def delete(self, caller: Caller, zone_id: uuid.UUID) -> ZoneRecord | ZoneRefused:
        """Soft-delete a live zone the caller sees; the zone as it was, or NOT_FOUND."""
        if not caller.can(Permission.ZONE_MANAGE):
            refused = ZoneRefused(ZoneRefusal.FORBIDDEN)
            return await self._refuse(caller, "zone.delete", refused, resource_id=zone_id)
        async with self._store.transaction() as conn:
            before = await self._store.soft_delete(zone_id, caller.facility_id, conn=conn)
            if before is not None and caller.audited:
                row = audit.entry(
                    caller,
                    action="zone.delete",
                    resource_type="zone",
                    resource_id=str(zone_id),
                    success=True,
                    facility_id=before.facility_id,
                    details={"old": before.summary()},
                )
                await audit.append(conn, row)
        if before is None:
            refused = ZoneRefused(ZoneRefusal.NOT_FOUND)
            return await self._refuse(caller, "zone.delete", refused, resource_id=zone_id)
        log.info("zone.deleted", zone_id=str(zone_id), facility_id=str(before.facility_id))
        if self._on_change is not None:
            await self._on_change()
        return before

    # Steps ------------------------------------------------------------------------------

    async def _target(
        self, caller: Caller, inputs: Sequence[FacilityInput]
    ) -> uuid.UUID | ZoneRefused:
        """The facility a new zone goes to: every reference must name the same one."""
        if not inputs:
            if caller.facility_id is not None:
                return caller.facility_id
            return ZoneRefused(
                ZoneRefusal.INVALID,
                "body.facility",
                "required: this token covers every facility; name one",
            )
        found: uuid.UUID | None = None
        for given in inputs:
            fac = await self._store.facility(given.ref)
            if fac is None and caller.facility_id is not None:
                # Answered as a foreign facility: a scoped token must not learn which
                # facilities exist (issue 13, item 18).
                refused = ZoneRefused(ZoneRefusal.OTHER_FACILITY)
                details = {"facility": given.ref}
                return await self._refuse(caller, "zone.create", refused, details=details)
            if fac is None:
                return ZoneRefused(
                    ZoneRefusal.INVALID, given.field, f"unknown facility {given.ref!r}"
                )
            if found is not None and fac.id != found:
                message = f"names another facility than {given.shown}"
                return ZoneRefused(ZoneRefusal.INVALID, inputs[0].field, message)
            found = fac.id
        assert found is not None
        return found

    async def _refuse(
        self,
        caller: Caller,
        action: str,
        refused: ZoneRefused,
        facility_id: uuid.UUID | None = None,
        details: dict[str, Any] | None = None,
        *,
        resource_id: uuid.UUID | None = None,
    ) -> ZoneRefused:
        if caller.audited:
            row = audit.entry(
                caller,
                action=action,
                resource_type="zone",
                resource_id=str(resource_id) if resource_id is not None else None,
                success=False,
                facility_id=facility_id,
                reason=refused.reason.value,
                details=details,
            )
            await audit.record(self._pool, row)
        return refused
