"""How the engine hears about missions: the mission events of the live event stream.

Why the event stream rather than a call from the API route: every way a mission changes
(the API, the ``fleetd`` CLI on another machine, another daemon's operator) ends in a
``mission_events`` row, and the stream delivers each row once, in order, with a NOTIFY
wake-up. The engine takes the stream's live position *before* it loads the open
missions, so a mission created in between is seen (at worst twice, which is harmless).
Events the engine wrote itself (actor ``system:dispatch``) are skipped.
"""

from __future__ import annotations

import asyncio

import structlog

from dispatcher.dispatch.engine import SYSTEM, DispatchEngine
from dispatcher.missions.lifecycle import MissionEvent
from dispatcher.ops.durable import UNREACHABLE
from dispatcher.retry import Backoff, BackoffPolicy
from dispatcher.storage.event_stream import (
    EventHub,
    EventKind,
    EventReader,
    HubClosed,
    Position,
    StreamEvent,
)

log = structlog.get_logger(__name__)

_KINDS = (EventKind.MISSION,)


class MissionIntake:
    """Feeds the engine the mission events others write."""

    def __init__(
        self, engine: DispatchEngine, reader: EventReader, hub: EventHub, *, poll_s: float = 1.0
    ) -> None:
        self._engine = engine
        self._reader = reader
        self._hub = hub
        self._poll_s = poll_s

    async def run(self) -> None:
        """Take the live position, load the open missions, then follow the stream."""
        position = await self._reader.live_position()
        await self._engine.load()
        backoff = Backoff(BackoffPolicy(base_s=0.5, cap_s=10.0))
        try:
            await self._follow(position, backoff)
        except HubClosed:
            # Shutdown closes the hub first; a daemon stopped while still starting reaches
            # here before its subscription exists. Not a failure of the dispatch task.
            log.info("dispatch.intake_stopped", reason="event hub closed")

    async def _follow(self, position: Position, backoff: Backoff) -> None:
        async with self._hub.subscribe(_KINDS) as sub:
            while not sub.closed:
                try:
                    batch = await self._reader.read(position, kinds=_KINDS)
                except UNREACHABLE as exc:
                    # PostgreSQL away: nobody else can change missions either; wait.
                    delay = backoff.next_delay()
                    log.warning("dispatch.intake_waiting", error=type(exc).__name__)
                    await asyncio.sleep(delay)
                    continue
                backoff.reset()
                for event in batch.events:
                    position = event.position
                    await self._handle(event)
                if batch.more:
                    continue
                await sub.wait(0.05 if batch.held else self._poll_s)

    async def _handle(self, event: StreamEvent) -> None:
        if event.actor == SYSTEM.subject:
            return
        try:
            kind = MissionEvent(event.event)
        except ValueError:
            return
        if kind is MissionEvent.CREATED:
            await self._engine.mission_created(event.subject_id)
        else:
            await self._engine.mission_changed(event.subject_id, kind)
