"""The dispatch intake at shutdown (no database: the engine and reader are stand-ins)."""

from __future__ import annotations

from typing import Any, cast

from dispatcher.dispatch.intake import MissionIntake
from dispatcher.storage.event_stream import EventHub, Position


class Engine:
    loaded = False

    async def load(self) -> int:
        self.loaded = True
        return 0


class Reader:
    async def live_position(self) -> Position:
        return Position(1, 0)


async def test_a_hub_closed_by_shutdown_ends_the_intake_quietly() -> None:
    """A daemon stopped while still starting closes the event hub before the intake has
    subscribed (the CI run of 2026-12-03: the dispatch task failed with HubClosed)."""
    hub = EventHub("postgresql://nowhere.invalid/none")
    await hub.close()
    engine = Engine()
    intake = MissionIntake(cast(Any, engine), cast(Any, Reader()), hub)
    await intake.run()  # returns, does not raise
    assert engine.loaded
