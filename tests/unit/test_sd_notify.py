"""sd_notify: datagrams a real AF_UNIX socket receives (path and abstract addresses)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatcher.sd_notify import Notifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket bound to a path, as systemd's notify socket is."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    try:
        yield path, sock
    finally:
        sock.close()


def _fields(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_without_notify_socket_every_call_is_a_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.ready("serving") is False
    assert notifier.watchdog() is False
    assert notifier.watchdog_interval_s is None


def test_messages_arrive_as_datagrams(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.ready("serving: 3 vehicles")
    assert _fields(sock) == ["READY=1", "STATUS=serving: 3 vehicles"]
    assert notifier.status("two\nlines")
    assert _fields(sock) == ["STATUS=two lines"]  # a newline would start a new field
    assert notifier.reloading()
    reload = _fields(sock)
    assert reload[0] == "RELOADING=1" and reload[1].startswith("MONOTONIC_USEC=")
    assert notifier.watchdog()
    assert _fields(sock) == ["WATCHDOG=1"]
    assert notifier.stopping("draining")
    assert _fields(sock) == ["STOPPING=1", "STATUS=draining"]
    notifier.close()


def test_abstract_socket_address() -> None:
    name = f"fleetd-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2.0)
    try:
        notifier = Notifier({"NOTIFY_SOCKET": f"@{name}"})
        assert notifier.ready()
        assert _fields(sock) == ["READY=1"]
        notifier.close()
    finally:
        sock.close()


def test_a_missing_socket_is_counted_not_raised(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False
    notifier.close()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    env: dict[str, str], expected: float | None
) -> None:
    assert Notifier(env).watchdog_interval_s == expected


async def test_watchdog_task_pings_from_the_event_loop(
    listener: tuple[str, socket.socket],
) -> None:
    path, sock = listener
    sock.setblocking(False)
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})  # every 50 ms
    task = asyncio.create_task(notifier.run_watchdog(lambda: "serving"))
    await asyncio.sleep(0.3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    notifier.close()
    pings = []
    while True:
        try:
            pings.append(sock.recv(4096).decode())
        except BlockingIOError:
            break
    assert len(pings) >= 3
    assert all(p == "WATCHDOG=1\nSTATUS=serving" for p in pings)


async def test_watchdog_task_ends_at_once_without_a_watchdog(
    listener: tuple[str, socket.socket],
) -> None:
    path, _ = listener
    await asyncio.wait_for(Notifier({"NOTIFY_SOCKET": path}).run_watchdog(), 1.0)
