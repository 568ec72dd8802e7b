"""The broker's own dropped-message count reaches fleetd's metrics and readiness (issue 18)."""

from __future__ import annotations

from dispatcher.config import MqttSettings
from dispatcher.links.mqtt import SYS_DROPPED, MqttTransport
from dispatcher.metrics import BROKER_DROPPED


def transport() -> MqttTransport:
    return MqttTransport(MqttSettings(), client_id="t", routes=[])


class TestBrokerDropped:
    def test_unknown_until_the_broker_says(self) -> None:
        assert transport().broker_dropped() == (None, 0)

    def test_growth_since_fleetd_first_read_it(self) -> None:
        t = transport()
        t._on_message(None, SYS_DROPPED, b"5", 0, {})
        assert t.broker_dropped() == (5, 0)
        assert BROKER_DROPPED._value.get() == 5
        t._on_message(None, SYS_DROPPED, b"9", 0, {})
        assert t.broker_dropped() == (9, 4)

    def test_a_broker_restart_starts_the_count_again(self) -> None:
        t = transport()
        t._on_message(None, SYS_DROPPED, b"50", 0, {})
        t._on_message(None, SYS_DROPPED, b"2", 0, {})  # the broker restarted
        assert t.broker_dropped() == (2, 0)

    def test_garbage_is_counted_not_fatal(self) -> None:
        t = transport()
        t._on_message(None, SYS_DROPPED, b"lots", 0, {})
        assert t.broker_dropped() == (None, 0)
