"""The daemon's one MQTT session: receive every vehicle's messages, publish commands.

Built on gmqtt, whose asyncio-native reader calls our handler straight from
``data_received`` with no per-message queue or task (see docs/architecture.md for the
measurements behind this choice). Handlers therefore run synchronously and must be quick;
anything slow is buffered by the handler and written by a task of its own.

The session is persistent (clean_session false, fixed client id) so QoS 1 messages wait
at the broker while fleetd restarts. Subscriptions are re-sent on every (re)connect, so a
broker that lost the session still delivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import gmqtt
import structlog
from gmqtt.mqtt.constants import MQTTv311

from dispatcher.config import MqttSettings
from dispatcher.links.broker_guard import TakeoverDetector, client_tls_context
from dispatcher.metrics import (
    BROKER_DROPPED,
    MESSAGES_REJECTED,
    MQTT_RECONNECTS,
    MQTT_SESSION_TAKEOVERS,
)
from dispatcher.retry import Backoff, BackoffPolicy

log = structlog.get_logger(__name__)

#: Mosquitto's own count of messages it dropped (queues full, QoS 0 to a slow client).
SYS_DROPPED = "$SYS/broker/publish/messages/dropped"

#: (topic, payload, retained) -> None. Must not block; must not raise for bad input.
MessageHandler = Callable[[str, bytes, bool], None]


class LinkState(Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


class TransportError(Exception):
    """Base of the MQTT transport's errors."""


class NotConnected(TransportError):
    """A publish was attempted while the broker session is down."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        super().__init__(f"not connected to the MQTT broker; cannot publish to {topic}")


@dataclass(frozen=True, slots=True)
class Route:
    """Messages whose topic starts with ``prefix + '/'`` go to ``handler``."""

    name: str  # link name for metrics: vda5050 | driver
    prefix: str
    subscriptions: Sequence[str]
    handler: MessageHandler

    @classmethod
    def whole_prefix(cls, name: str, prefix: str, handler: MessageHandler) -> Route:
        """Every topic under ``prefix`` to ``handler``: not just the inbound topics, so a
        vehicle publishing on a misspelt or misshapen topic is counted and logged rather
        than silently filtered out by the broker (our own commands echo back, skipped)."""
        return cls(name, prefix, [f"{prefix}/#"], handler)


class MqttTransport:
    """One persistent MQTT session carrying all vehicle links."""

    def __init__(self, settings: MqttSettings, *, client_id: str, routes: Sequence[Route]) -> None:
        self._settings = settings
        self._client_id = client_id
        self._routes = tuple(routes)
        self._state = LinkState.IDLE
        self._client: gmqtt.Client | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self._takeover = TakeoverDetector(settings.takeover_disconnects, settings.takeover_window_s)
        #: Broker sessions begun (CONNACKs received) since construction.
        self.sessions = 0
        self._backoff = Backoff(BackoffPolicy(cap_s=settings.reconnect_max_delay_s))
        self._dropped: int | None = None
        self._dropped_first: int | None = None

    def broker_dropped(self) -> tuple[int | None, int]:
        """The broker's dropped-message count ($SYS; None until it reported one), and how
        much it grew since fleetd first read it (the broker counts since its own start;
        a broker restart sets both back)."""
        if self._dropped is None or self._dropped_first is None:
            return self._dropped, 0
        return self._dropped, max(0, self._dropped - self._dropped_first)

    @property
    def state(self) -> LinkState:
        return self._state

    def is_connected(self) -> bool:
        return self._state is LinkState.CONNECTED

    def takeover_suspected(self) -> bool:
        """Whether another client is fighting us for our client id (broker_guard)."""
        return self._takeover.suspected(time.monotonic())

    def is_healthy(self) -> bool:
        """Connected, and not in a client-id fight (what readiness reports)."""
        return self.is_connected() and not self.takeover_suspected()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    # --- receive ----------------------------------------------------------------------

    def _on_message(
        self, client: Any, topic: str, payload: bytes, qos: int, properties: Any
    ) -> int:
        retained = bool(properties.get("retain", 0)) if properties else False
        if topic == SYS_DROPPED:
            self._on_dropped(payload)
            return 0
        for route in self._routes:
            if (
                topic.startswith(route.prefix)
                and topic[len(route.prefix) : len(route.prefix) + 1] == "/"
            ):
                try:
                    route.handler(topic, payload, retained)
                except Exception:
                    # A bug in a handler must not stop the flow of every other vehicle.
                    MESSAGES_REJECTED.labels(route.name, "internal_error").inc()
                    log.exception("mqtt.handler_failed", topic=topic)
                return 0
        MESSAGES_REJECTED.labels("mqtt", "bad_topic").inc()
        return 0

    def _on_dropped(self, payload: bytes) -> None:
        try:
            dropped = int(payload.strip() or b"0")
        except ValueError:
            MESSAGES_REJECTED.labels("mqtt", "schema_invalid").inc()
            return
        if self._dropped is not None and dropped > self._dropped:
            log.warning("mqtt.broker_dropped", dropped=dropped, new=dropped - self._dropped)
        if self._dropped_first is None or dropped < self._dropped_first:
            self._dropped_first = dropped  # first reading, or the broker restarted
        self._dropped = dropped
        BROKER_DROPPED.set(dropped)

    def _on_connect(self, client: Any, flags: Any, rc: Any, properties: Any) -> None:
        _coalesce_writes(client)
        subs = [gmqtt.Subscription(t, qos=1) for r in self._routes for t in r.subscriptions]
        if subs:
            client.subscribe(subs)
        # Not every login may read $SYS (the ACL decides); a refusal changes nothing else.
        client.subscribe(gmqtt.Subscription(SYS_DROPPED, qos=0))
        if self.sessions:
            MQTT_RECONNECTS.inc()
        self._backoff.reset()
        self._state = LinkState.CONNECTED
        self._connected.set()
        self._takeover.connected(time.monotonic())
        self.sessions += 1
        log.info("mqtt.connected", client_id=self._client_id, subscriptions=len(subs))

    def _on_disconnect(self, client: Any, packet: Any, exc: Any = None) -> None:
        self._connected.clear()
        if self._closing:
            self._state = LinkState.CLOSED
            return
        self._state = LinkState.CONNECTING
        # gmqtt reconnects by itself after ``reconnect_delay`` (the same delay for each try
        # of one outage): draw it per outage from the one back-off rule (full jitter,
        # capped), so daemons cut off together do not come back in lockstep.
        delay = self._backoff.next_delay()
        with contextlib.suppress(AttributeError):
            client.reconnect_delay = max(0.05, delay)
        log.warning("mqtt.disconnected", client_id=self._client_id, reconnect_in_s=round(delay, 2))
        if self._takeover.disconnected(time.monotonic()):
            MQTT_SESSION_TAKEOVERS.inc()
            log.error(
                "mqtt.session_takeover",
                client_id=self._client_id,
                hint="another client connects with this client id (or this login): "
                "check for a second fleetd, or leaked broker credentials",
            )

    # --- publish ----------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Hand a message to the session; QoS 1 messages are re-sent by it until acknowledged."""
        client = self._client
        if client is None or self._state is not LinkState.CONNECTED:
            raise NotConnected(topic)
        client.publish(topic, payload, qos=qos, retain=retain)

    # --- lifecycle --------------------------------------------------------------------

    def _new_client(self) -> gmqtt.Client:
        client = gmqtt.Client(self._client_id, clean_session=not self._settings.persistent_session)
        if self._settings.username is not None:
            password = self._settings.password
            client.set_auth_credentials(
                self._settings.username, password.get_secret_value() if password else None
            )
        client.on_message = self._on_message
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        # After the first connection, gmqtt itself reconnects (fixed delay, unlimited).
        client.set_config({"reconnect_retries": -1, "reconnect_delay": 1})
        return client

    async def run(self) -> None:
        """Connect (retrying with backoff until the broker answers), then hold the session.

        Returns only when cancelled; the session is closed on the way out.
        """
        backoff = Backoff(BackoffPolicy(cap_s=self._settings.reconnect_max_delay_s))
        try:
            while True:
                self._state = LinkState.CONNECTING
                client = self._new_client()
                # Before connect: on_connect (and so wait_connected) fires inside it, and a
                # publish right after wait_connected must find the client.
                self._client = client
                try:
                    await client.connect(
                        self._settings.host,
                        self._settings.port,
                        keepalive=self._settings.keepalive_s,
                        version=MQTTv311,
                        ssl=client_tls_context(self._settings) or False,
                    )
                except Exception as exc:
                    self._client = None
                    # gmqtt raises its own error types for refused CONNACKs; all mean "not yet".
                    delay = backoff.next_delay()
                    log.warning(
                        "mqtt.connect_failed",
                        host=self._settings.host,
                        port=self._settings.port,
                        error=str(exc) or type(exc).__name__,
                        retry_in_s=round(delay, 2),
                    )
                    await asyncio.sleep(delay)
                    continue
                backoff.reset()
                await asyncio.Event().wait()  # held until cancelled; gmqtt keeps it alive
        finally:
            await self._close()

    async def _close(self) -> None:
        self._closing = True
        client, self._client = self._client, None
        self._connected.clear()
        self._state = LinkState.CLOSED
        if client is not None:
            try:
                async with asyncio.timeout(2.0):
                    await client.disconnect()
            except (TimeoutError, OSError, RuntimeError) as exc:
                log.warning("mqtt.close_failed", error=str(exc))
        log.info("mqtt.closed", client_id=self._client_id)


#: First byte of an MQTT PUBACK packet (type 4, no flags).
_PUBACK = b"\x40"


def _coalesce_writes(client: gmqtt.Client) -> None:
    """Send what gmqtt writes in one burst as one ``send()``, not one per packet.

    gmqtt answers every QoS 1 message with a PUBACK written straight to the socket: one
    system call per message, a fifth of the daemon's CPU at 10,000 messages/s. It parses
    a whole read buffer (a hundred messages or so) in one go, so collecting the writes
    and sending them together once the loop comes round again costs no latency worth
    the name and keeps the order of every packet. Only PUBACKs wait; every other packet
    goes out at once. Applied on each connect (a reconnect
    makes a new protocol object); a gmqtt without the expected internals is left alone.
    """
    protocol = getattr(getattr(client, "_connection", None), "_protocol", None)
    transport = getattr(protocol, "_transport", None)
    if protocol is None or transport is None or not hasattr(protocol, "write_data"):
        log.warning("mqtt.write_coalescing_unavailable", gmqtt=getattr(gmqtt, "__version__", "?"))
        return
    if getattr(protocol, "_fleetd_coalescing", False):
        return
    loop = asyncio.get_running_loop()
    pending: list[bytes] = []
    write_data = protocol.write_data

    def flush() -> None:
        if pending:
            data = b"".join(pending)
            pending.clear()
            write_data(data)

    def coalesced(data: bytes) -> None:
        if data[:1] != _PUBACK:
            # Anything else (PUBLISH, PINGREQ, DISCONNECT...) leaves at once, after the
            # acknowledgements queued before it.
            flush()
            write_data(data)
            return
        if not pending:
            loop.call_soon(flush)
        pending.append(bytes(data))

    protocol.write_data = coalesced
    protocol._fleetd_coalescing = True
