"""What every simulated vehicle does on the wire, whichever protocol it speaks.

A virtual robot (VDA 5050) and a scripted driver phone (fleetd's driver protocol) differ
in their topics, messages and behaviour, but hold their MQTT session the same way a real
device does, and fleetd's liveness handling depends on exactly that: connect with a
retained Last Will ``CONNECTIONBROKEN``, announce ``ONLINE`` (retained), then receive
commands and publish a periodic report until cancelled, and on an orderly shutdown say
``OFFLINE`` (retained) so fleetd need not wait for the broker to fire the Last Will.
:class:`VirtualDevice` holds that session; a subclass says what differs.

Like its subclasses it writes plain JSON (the protocol documents' field names), never
fleetd's own models, so a test that passes shows fleetd follows the protocol.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import aiomqtt
import structlog

#: What a device does with a decoded inbound message (handlers never block: a reply goes
#: through :meth:`VirtualDevice.send`, published on the next tick).
Handler = Callable[[dict[str, Any]], None]

log = structlog.get_logger(__name__)


class VirtualDevice(abc.ABC):
    """One simulated vehicle's MQTT session. ``await device.run()`` until cancelled.

    Every ``tick_s`` the device advances its simulation (:meth:`step`), publishes the
    replies its handlers queued, and publishes its report (:meth:`report_message` on
    ``report_topic``) when ``report_interval_s`` has passed or something set ``_dirty``.
    """

    #: The periodic report's topic name (VDA 5050 ``state``, driver ``status``) and QoS.
    report_topic: ClassVar[str]
    report_qos: ClassVar[int]

    def __init__(
        self,
        *,
        base_topic: str,
        identity: Mapping[str, Any],
        client_id: str,
        task_name: str,
        host: str,
        port: int,
        report_interval_s: float,
        tick_s: float,
    ) -> None:
        """``identity``: the header fields after ``headerId`` and ``timestamp`` (protocol
        version and who is talking); ``task_name``: prefix of the session's task names."""
        self._base = base_topic
        self._identity = dict(identity)
        self._client_id = client_id
        self._task_name = task_name
        self._host, self._port = host, port
        self._report_interval = report_interval_s
        self._tick = tick_s
        #: Simulated seconds per real second (a demo's time-lapse; 1 = real time). Travel,
        #: actions, charging and battery drain all run this much faster.
        self.time_scale = 1.0
        #: Metres driven since start (a subclass adds each move): the simulator's own
        #: odometer, from which a live run measures empty and loaded distance per mission.
        self.odometer_m = 0.0
        self._headers: dict[str, int] = {}
        #: A change to report at the next tick rather than when the interval is up.
        self._dirty = False
        self._outbox: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        #: Set once the session is up and ``ONLINE`` is published.
        self.connected = asyncio.Event()

    # --- what a subclass says -----------------------------------------------------------

    @abc.abstractmethod
    def inbound(self) -> Mapping[str, Handler]:
        """The topic names the device subscribes to, in order, and their handlers."""

    @abc.abstractmethod
    def step(self, dt: float) -> None:
        """Advance the simulation by ``dt`` seconds."""

    @abc.abstractmethod
    def report_message(self) -> dict[str, Any]:
        """The periodic report, header included."""

    def _reported(self) -> None:  # noqa: B027 - an optional hook, empty on purpose
        """Called after each report is published (nothing by default)."""

    # --- wire ---------------------------------------------------------------------------

    def topic(self, name: str) -> str:
        return f"{self._base}/{name}"

    def _header(self, topic: str) -> dict[str, Any]:
        """The message header; ``headerId`` counts per topic, as both protocols require."""
        self._headers[topic] = self._headers.get(topic, -1) + 1
        return {
            "headerId": self._headers[topic],
            "timestamp": datetime.now(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            **self._identity,
        }

    def connection_message(self, state: str) -> dict[str, Any]:
        return {**self._header("connection"), "connectionState": state}

    def send(self, name: str, msg: dict[str, Any]) -> None:
        """Queue ``msg`` for topic ``name`` (QoS 1), published on the next tick."""
        self._outbox.put_nowait((name, msg))

    # --- for a host that drives many devices on one loop (sim.host) --------------------

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def report_interval_s(self) -> float:
        return self._report_interval

    @property
    def changed(self) -> bool:
        """Something changed that the next report should carry at once."""
        return self._dirty

    def mark_changed(self) -> None:
        """Report at the next tick rather than when the interval is up."""
        self._dirty = True

    def take_outbox(self) -> list[tuple[str, dict[str, Any]]]:
        """The queued replies (topic name, message), oldest first; the queue is emptied."""
        out = []
        while not self._outbox.empty():
            out.append(self._outbox.get_nowait())
        return out

    def take_report(self) -> dict[str, Any]:
        """The report to publish now; the device counts it as reported."""
        report = self.report_message()
        self._dirty = False
        self._reported()
        return report

    # --- session ------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, announce, then receive and publish until cancelled; when the broker
        goes away, connect again (as a real vehicle does), after 0.5-2 s."""
        while True:
            try:
                await self._session()
            except (aiomqtt.MqttError, BaseExceptionGroup) as exc:
                if isinstance(exc, BaseExceptionGroup):
                    _, rest = exc.split(aiomqtt.MqttError)
                    if rest is not None:
                        raise
                self.connected.clear()
                log.info("sim.reconnecting", device=self._client_id, error=str(exc))
                await asyncio.sleep(random.uniform(0.5, 2.0))

    async def _session(self) -> None:
        """One broker session: connect, announce, then receive and publish."""
        will = aiomqtt.Will(
            self.topic("connection"),
            json.dumps(self.connection_message("CONNECTIONBROKEN")),
            qos=1,
            retain=True,
        )
        client = aiomqtt.Client(
            self._host,
            self._port,
            identifier=self._client_id,
            will=will,
            keepalive=10,
        )
        await client.__aenter__()
        try:
            for name in self.inbound():
                await client.subscribe(self.topic(name), qos=1)
            await client.publish(
                self.topic("connection"),
                json.dumps(self.connection_message("ONLINE")),
                qos=1,
                retain=True,
            )
            self.connected.set()
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._receive(client), name=f"{self._task_name}.rx")
                    tg.create_task(self._publish_loop(client), name=f"{self._task_name}.tx")
            finally:
                # An orderly shutdown says goodbye; a killed process leaves it to the Last Will.
                with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                    async with asyncio.timeout(1.0):
                        await client.publish(
                            self.topic("connection"),
                            json.dumps(self.connection_message("OFFLINE")),
                            qos=1,
                            retain=True,
                        )
        finally:
            # aiomqtt waits for the disconnect acknowledgement without a time limit, and
            # now and then it never comes: a simulated vehicle must still stop.
            with contextlib.suppress(TimeoutError, aiomqtt.MqttError):
                async with asyncio.timeout(2.0):
                    await client.__aexit__(None, None, None)

    async def _receive(self, client: aiomqtt.Client) -> None:
        """Hand each inbound JSON message to its topic's handler; anything else is dropped."""
        handlers = self.inbound()
        async for message in client.messages:
            try:
                msg = json.loads(bytes(message.payload))
            except (ValueError, TypeError):
                continue
            for name, handler in handlers.items():
                if message.topic.matches(self.topic(name)):
                    handler(msg)
                    break

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        last_report = 0.0
        last_step = time.monotonic()
        task = asyncio.current_task()
        while True:
            # On Python 3.11, asyncio.wait_for (inside aiomqtt's QoS 1 publish) can swallow
            # a cancellation that races the PUBACK; a cancelled device must stop all the same.
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            await asyncio.sleep(self._tick)
            now = time.monotonic()
            self.step((now - last_step) * self.time_scale)
            last_step = now
            while not self._outbox.empty():
                name, msg = self._outbox.get_nowait()
                await client.publish(self.topic(name), json.dumps(msg), qos=1)
            if self._dirty or now - last_report >= self._report_interval:
                # Settle the bookkeeping before the publish yields: a message handled
                # meanwhile (an instant action finished at once) must make the next report,
                # not be marked as reported by this one, which was built without it.
                report = json.dumps(self.report_message())
                last_report = now
                self._dirty = False
                self._reported()
                await client.publish(self.topic(self.report_topic), report, qos=self.report_qos)
