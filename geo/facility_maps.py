"""Lookups over the configured facilities: map frames, facilities by key or id, places.

Built once at start-up from the configured facilities (translated into
:class:`geo.facility.FacilitySpec` by the settings) and shared read-only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator

from geo.facility import FacilitySpec, PlaceSpec
from geo.frames import MapFrame


class FacilityMaps:
    """Every facility's maps (with one :class:`MapFrame` each) and named places."""

    def __init__(self, facilities: Iterable[FacilitySpec]) -> None:
        self._facilities: dict[uuid.UUID, FacilitySpec] = {}
        self._by_key: dict[str, FacilitySpec] = {}
        self._frames: dict[str, MapFrame] = {}
        self._facility_of_map: dict[str, FacilitySpec] = {}
        self._places: dict[tuple[uuid.UUID, str], PlaceSpec] = {}
        self._places_by_node: dict[tuple[uuid.UUID, str], PlaceSpec] = {}
        for facility in facilities:
            if facility.key in self._by_key:
                raise ValueError(f"facility key {facility.key!r} appears twice")
            self._facilities[facility.id] = facility
            self._by_key[facility.key] = facility
            for m in facility.maps:
                # Robots name maps without a facility, so a mapId must be unique fleet-wide.
                if m.map_id in self._frames:
                    raise ValueError(f"map_id {m.map_id!r} belongs to more than one facility")
                self._frames[m.map_id] = MapFrame(m)
                self._facility_of_map[m.map_id] = facility
            for p in facility.places:
                self._places[(facility.id, p.name)] = p
                if p.node_id is not None:
                    self._places_by_node.setdefault((facility.id, p.node_id), p)

    def __iter__(self) -> Iterator[FacilitySpec]:
        return iter(self._facilities.values())

    def __len__(self) -> int:
        return len(self._facilities)

    def frame(self, map_id: str) -> MapFrame | None:
        """The frame of ``map_id``, or None for a map no facility has."""
        return self._frames.get(map_id)

    def facility_for_map(self, map_id: str) -> FacilitySpec | None:
        """The facility ``map_id`` belongs to, or None."""
        return self._facility_of_map.get(map_id)

    def facility(self, key_or_id: str | uuid.UUID) -> FacilitySpec | None:
        """A facility by its key (``demo-campus``), its UUID, or its UUID as text."""
        if isinstance(key_or_id, uuid.UUID):
            return self._facilities.get(key_or_id)
        found = self._by_key.get(key_or_id)
        if found is not None:
            return found
        try:
            return self._facilities.get(uuid.UUID(key_or_id))
        except ValueError:
            return None

    def place(self, facility_id: str | uuid.UUID, name: str) -> PlaceSpec | None:
        """A named place of a facility (given by key or id), or None."""
        facility = self.facility(facility_id)
        if facility is None:
            return None
        return self._places.get((facility.id, name))

    def place_at_node(self, facility_id: str | uuid.UUID, node_id: str) -> PlaceSpec | None:
        """The place whose route-graph node is ``node_id`` (e.g. a robot's lastNodeId)."""
        facility = self.facility(facility_id)
        if facility is None:
            return None
        return self._places_by_node.get((facility.id, node_id))
