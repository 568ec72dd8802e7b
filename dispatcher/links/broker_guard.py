"""Broker-side dangers to the daemon's one MQTT session: TLS, and client-id takeover.

Takeover: an MQTT broker allows one connection per client id and drops the older one when
a second client connects with the same id. Another client using fleetd's id therefore
knocks fleetd off, fleetd's reconnect knocks it off in turn, and the two fight for good,
each session lasting a second or so. MQTT 3.1.1 gives the dropped client no reason (the
broker just closes the socket), so the symptom is what :class:`TakeoverDetector` watches
for: several sessions in a row that each ended soon after they began. The shipped broker
configuration (configs/mosquitto/fleetd.conf, ``use_username_as_clientid``) makes a
client's id its login, so only someone holding fleetd's own credentials can do this.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from dispatcher.config import MqttSettings


def client_tls_context(settings: MqttSettings) -> ssl.SSLContext | None:
    """The TLS context for the broker connection, or None for plain TCP (``mqtt.tls``).

    Certificates and host names are always checked: against ``tls_ca_file`` when set,
    else against the system's CAs. A client certificate is presented when configured.
    """
    if not settings.tls:
        return None
    context = ssl.create_default_context(
        cafile=str(settings.tls_ca_file) if settings.tls_ca_file is not None else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    return context


@dataclass(slots=True)
class TakeoverDetector:
    """Decides, from connect and disconnect times alone, that our client id is contested.

    ``threshold`` sessions in a row each shorter than ``window_s`` mean a takeover; one
    session that outlives ``window_s`` ends the suspicion. Pure: the caller passes the
    (monotonic) clock reading.
    """

    threshold: int
    window_s: float
    _connected_at: float | None = None
    _short_in_a_row: int = 0

    def connected(self, now: float) -> None:
        """A session began."""
        self._connected_at = now

    def disconnected(self, now: float) -> bool:
        """A session ended; True when this disconnect makes the takeover evident."""
        began, self._connected_at = self._connected_at, None
        if began is None:
            return False
        if now - began > self.window_s:
            self._short_in_a_row = 0
            return False
        self._short_in_a_row += 1
        return self._short_in_a_row == self.threshold

    def suspected(self, now: float) -> bool:
        """Whether the id is contested now (cleared by a session lasting ``window_s``)."""
        if self._connected_at is not None and now - self._connected_at > self.window_s:
            self._short_in_a_row = 0
        return self._short_in_a_row >= self.threshold
