"""systemd's service notification protocol (sd_notify(3)), without libsystemd.

Under ``Type=notify`` systemd passes ``$NOTIFY_SOCKET``: an AF_UNIX datagram socket (a
path, or an abstract name when it starts with ``@``). Each datagram is newline-separated
``KEY=VALUE`` fields: ``READY=1``, ``STATUS=...``, ``WATCHDOG=1``, ``STOPPING=1``,
``RELOADING=1``. With ``WatchdogSec=`` set, systemd also passes ``$WATCHDOG_USEC`` (and
``$WATCHDOG_PID``, the process it expects pings from): no ``WATCHDOG=1`` within that
time and systemd kills and restarts the service.

Without ``$NOTIFY_SOCKET`` (a terminal, a container, the tests) every call is a no-op.
A send never blocks (non-blocking datagram socket) and never raises: losing a status line
must not take the daemon down; a failed send is logged once, then counted.

PyPI has small pure-Python clients (``sdnotify``, ``sd-notify``, ``systemd-watchdog``),
but they are unmaintained single-file packages that swallow errors silently and know
nothing of ``WATCHDOG_PID``; the protocol is a few lines, so fleetd keeps its own.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Mapping

import structlog
from prometheus_client import Counter

log = structlog.get_logger(__name__)

SD_NOTIFY_FAILED = Counter(
    "fleetd_sd_notify_failed_total",
    "Notifications to systemd ($NOTIFY_SOCKET) that could not be sent.",
)


def _address(value: str) -> str | bytes:
    """The socket address of ``$NOTIFY_SOCKET``: ``@name`` is Linux's abstract namespace."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


class Notifier:
    """Messages to the service manager; :meth:`run_watchdog` is the event loop's ping task.

    ``environ`` defaults to the process environment (read once, here).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        socket_path = env.get("NOTIFY_SOCKET", "")
        self._address: str | bytes | None = _address(socket_path) if socket_path else None
        self._socket: socket.socket | None = None
        self._failed_once = False
        self.watchdog_interval_s = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        """Whether a service manager listens (``$NOTIFY_SOCKET`` is set)."""
        return self._address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``fields`` (``"READY=1"``, ...) as one datagram; True when sent."""
        if self._address is None or not fields:
            return False
        payload = "\n".join(fields).encode()
        try:
            if self._socket is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                sock.setblocking(False)
                self._socket = sock
            self._socket.sendto(payload, self._address)
        except OSError as exc:
            SD_NOTIFY_FAILED.inc()
            if not self._failed_once:
                # Once: a gone socket would otherwise log on every watchdog tick.
                self._failed_once = True
                log.warning("sd_notify.send_failed", error=str(exc), fields=list(fields))
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: start-up is over, the service is serving."""
        return self.notify("READY=1", *_status(status))

    def status(self, text: str) -> bool:
        """``STATUS=``: the one line ``systemctl status`` shows."""
        return self.notify(*_status(text))

    def reloading(self, status: str | None = None) -> bool:
        """``RELOADING=1`` (with ``MONOTONIC_USEC``, which systemd >= 253 asks for); send
        :meth:`ready` when the reload is over."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", *_status(status))

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: shutdown has begun (systemd then times it with TimeoutStopSec)."""
        return self.notify("STOPPING=1", *_status(status))

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the service is alive."""
        return self.notify("WATCHDOG=1")

    async def run_watchdog(self, status: Callable[[], str] | None = None) -> None:
        """Ping the watchdog every ``WatchdogSec / 2`` from the event loop, forever.

        A task of the daemon's TaskGroup: when the loop is stuck (a blocking call, a busy
        coroutine that never yields), the pings stop and systemd restarts the service,
        which is the point. ``status``, when given, is sent as ``STATUS=`` with every ping
        (what ``systemctl status fleetd`` shows). Returns at once when no watchdog is
        asked for (no ``$WATCHDOG_USEC``, or it names another process).
        """
        interval = self.watchdog_interval_s
        if interval is None or not self.enabled:
            return
        log.info("sd_notify.watchdog", ping_every_s=interval)
        while True:
            fields = ["WATCHDOG=1"]
            if status is not None:
                fields.extend(_status(status()))
            self.notify(*fields)
            await asyncio.sleep(interval)

    def close(self) -> None:
        """Close the socket (a later notify opens a new one)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _status(text: str | None) -> list[str]:
    # One line: a newline would start another field of the datagram.
    return [f"STATUS={' '.join(text.split())}"] if text else []


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds (what sd_watchdog_enabled(3) advises), or None
    when there is no watchdog or ``$WATCHDOG_PID`` names another process."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec:
        return None
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("sd_notify.bad_watchdog_usec", value=usec)
        return None
    if value <= 0:
        return None
    return value / 2 / 1_000_000
