"""The one path typed vehicle events take from the links to the rest of the daemon.

The links publish from the MQTT receive callback, which must never block or wait, so
:meth:`VehicleEventBus.publish` is synchronous and O(1). The bus is bounded: when its
consumer falls behind by ``capacity`` events the oldest is dropped, counted
(``fleetd_vehicle_events_dropped_total``) and logged at most once per ``warn_interval_s``.
Dropping the oldest rather than the newest because a consumer that catches up acts on the
latest news; whatever it missed it can read back from the registry's state.

One consumer (the supervisor's ``fleetd.vehicle_events`` task) reads it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from dispatcher.links.vehicle_events import VehicleEvent
from dispatcher.metrics import VEHICLE_EVENTS, VEHICLE_EVENTS_DROPPED

log = structlog.get_logger(__name__)

DEFAULT_CAPACITY = 10_000


class VehicleEventBus:
    """A bounded single-consumer queue of :data:`VehicleEvent`, dropping the oldest when full."""

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        *,
        warn_interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self._queue: asyncio.Queue[VehicleEvent] = asyncio.Queue(maxsize=capacity)
        self._warn_interval_s = warn_interval_s
        self._clock = clock
        self._next_warn_at = 0.0
        self.published = 0
        self.dropped = 0

    @property
    def capacity(self) -> int:
        return self._queue.maxsize

    @property
    def pending(self) -> int:
        """Events published and not yet taken by the consumer."""
        return self._queue.qsize()

    def publish(self, event: VehicleEvent) -> None:
        """Queue one event; never blocks (the oldest goes when the bus is full)."""
        queue = self._queue
        if queue.full():
            queue.get_nowait()
            self._count_drop()
        queue.put_nowait(event)
        self.published += 1
        VEHICLE_EVENTS.labels(type(event).__name__).inc()

    async def get(self) -> VehicleEvent:
        """The oldest event held, waiting for one if there is none."""
        return await self._queue.get()

    def get_nowait(self) -> VehicleEvent | None:
        """The oldest event held, or None."""
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def _count_drop(self) -> None:
        self.dropped += 1
        VEHICLE_EVENTS_DROPPED.inc()
        now = self._clock()
        if now >= self._next_warn_at:
            self._next_warn_at = now + self._warn_interval_s
            log.warning(
                "vehicle_events.dropped", dropped_total=self.dropped, capacity=self.capacity
            )
