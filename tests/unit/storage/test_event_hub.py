"""Who runs the event hub's listening task: the supervisor, or the hub itself."""

from __future__ import annotations

import asyncio

import pytest

from dispatcher.storage.event_stream import EventHub

#: Nothing listens there; these tests never connect.
DSN = "postgresql://127.0.0.1:1/none"


class TestStandaloneHub:
    async def test_a_supervised_hub_starts_no_task_of_its_own(self) -> None:
        hub = EventHub(DSN, supervised=True)
        async with hub.subscribe():
            await asyncio.sleep(0)
            assert not hub.running  # nobody runs it: no task appeared by itself
        await hub.close()

    async def test_an_unsupervised_hub_cannot_be_run_by_a_supervisor(self) -> None:
        with pytest.raises(RuntimeError, match="own listening task"):
            await EventHub(DSN).run()
