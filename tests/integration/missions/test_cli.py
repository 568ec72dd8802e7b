"""``fleetd mission`` end to end: the real CLI against the API served by uvicorn."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import asyncpg
import pytest
import uvicorn

from dispatcher.api.app import create_app
from dispatcher.auth.roles import Role
from dispatcher.cli import main
from dispatcher.services import Services
from tests.conftest import free_port
from tests.integration.missions.conftest import TokenFactory, counts


@pytest.fixture
async def api_url(services: Services) -> AsyncIterator[str]:
    """Base URL of the API served by uvicorn in this event loop."""
    port = free_port()
    config = uvicorn.Config(
        create_app(services), host="127.0.0.1", port=port, lifespan="off", ws="none",
        log_level="warning",
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _fleetd(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


def _cli_lines(text: str) -> list[str]:
    """The CLI's own output lines (the in-process server's log lines left out)."""
    return [line for line in text.splitlines() if not _LOG_LINE.match(line)]


class TestMissionCli:
    async def test_create_show_cancel(
        self,
        api_url: str,
        token: TokenFactory,
        pg_pool: asyncpg.Pool,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """create prints the id last; show prints the timeline; cancel, then cancel fails."""
        secret = (await token(Role.OPERATOR))["Authorization"].removeprefix("Bearer ")
        monkeypatch.setenv("FLEETD_API__URL", api_url)
        monkeypatch.setenv("FLEETD_TOKEN", secret)
        monkeypatch.delenv("FLEETD_CONFIG", raising=False)

        code = await _fleetd(
            "mission", "create", "--pickup", "Ward A", "--dropoff", "Radiology",
            "--priority", "high", "--kind", "robot", "--at", "23:59", "--window", "1440",
        )  # fmt: skip
        out = _cli_lines(capsys.readouterr().out)
        assert code == 0, out
        assert out[-1].startswith("created pending high mission ")
        mission_id = out[-1].split()[-1]
        assert await counts(pg_pool) == (1, 1)

        assert await _fleetd("mission", "show", mission_id) == 0
        shown = capsys.readouterr().out
        assert f"mission {mission_id}  pending  priority high" in shown
        assert "created" in shown.split("timeline")[1]

        assert await _fleetd("mission", "cancel", mission_id, "--reason", "test") == 0
        assert _cli_lines(capsys.readouterr().out) == [f"mission {mission_id} is cancelled"]

        assert await _fleetd("mission", "cancel", mission_id) == 1
        err = capsys.readouterr().err
        assert "409 Illegal transition" in err

        assert await _fleetd("mission", "list", "--status", "cancelled") == 0
        assert mission_id in capsys.readouterr().out

    async def test_unknown_place_is_one_readable_line(
        self,
        api_url: str,
        token: TokenFactory,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """An API refusal prints as one line naming the field, exit status 1."""
        secret = (await token(Role.NURSE))["Authorization"].removeprefix("Bearer ")
        monkeypatch.setenv("FLEETD_API__URL", api_url)
        monkeypatch.setenv("FLEETD_TOKEN", secret)
        monkeypatch.delenv("FLEETD_CONFIG", raising=False)
        code = await _fleetd("mission", "create", "--pickup", "Mars", "--dropoff", "Radiology")
        err = capsys.readouterr().err
        assert code == 1
        assert "body.pickup.place" in err
        assert len(err.strip().splitlines()) == 1
