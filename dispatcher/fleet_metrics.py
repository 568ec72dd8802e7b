"""Fleet metrics, counted at the edge from what the registry reports.

The registry (:mod:`fleet.registry`) is pure and knows nothing of Prometheus: liveness
changes are counted by a listener on its change feed, and the online gauge is set from a
snapshot of its records by the liveness task.
"""

from __future__ import annotations

from dispatcher.metrics import LIVENESS_CHANGES as LIVENESS_CHANGES_TOTAL
from dispatcher.metrics import VEHICLE_HISTORY_SUPPRESSED, VEHICLES_ONLINE
from fleet.changes import FleetChange
from fleet.model import LIVENESS_CHANGES, VehicleKind
from fleet.registry import FleetRegistry

# Label children resolved once: the listener runs on the event loop, per change.
_LIVENESS_COUNTERS = {kind: LIVENESS_CHANGES_TOTAL.labels(kind.value) for kind in LIVENESS_CHANGES}


def _count_liveness(change: FleetChange) -> None:
    counter = _LIVENESS_COUNTERS.get(change.kind)
    if counter is not None:
        counter.inc()


def count_suppressed_history(change: FleetChange) -> None:
    """Count a vehicle_events row the registry's per-vehicle budget held back."""
    VEHICLE_HISTORY_SUPPRESSED.labels(change.kind.value).inc()


def count_liveness_changes(registry: FleetRegistry) -> None:
    """Count every vehicle going online or offline (``fleetd_liveness_changes_total``)."""
    registry.subscribe(_count_liveness)


def publish_online(registry: FleetRegistry) -> None:
    """Set ``fleetd_vehicles_online`` per kind from the registry's records."""
    online = dict.fromkeys(VehicleKind, 0)
    for rec in registry.records():
        if rec.online:
            online[rec.key.kind] += 1
    for kind, n in online.items():
        VEHICLES_ONLINE.labels(kind.value).set(n)
