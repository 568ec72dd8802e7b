"""Client-id takeover detection and the broker TLS context (no broker)."""

from __future__ import annotations

import ssl

import pytest

from dispatcher.config import MqttSettings
from dispatcher.links.broker_guard import TakeoverDetector, client_tls_context


def _sessions(detector: TakeoverDetector, lengths: list[float], gap: float = 1.0) -> list[bool]:
    """Run sessions of the given lengths back to back; what each disconnect returned."""
    now, seen = 0.0, []
    for length in lengths:
        detector.connected(now)
        now += length
        seen.append(detector.disconnected(now))
        now += gap
    return seen


class TestTakeoverDetector:
    def test_repeated_short_sessions_are_a_takeover(self) -> None:
        """The third session in a row ending within the window reports it, once."""
        detector = TakeoverDetector(threshold=3, window_s=10.0)
        assert _sessions(detector, [1.0, 1.0, 1.0, 1.0]) == [False, False, True, False]
        assert detector.suspected(100.0)

    def test_a_long_session_in_between_resets_the_count(self) -> None:
        """Ordinary reconnects (broker restart, network blip) after stable sessions do not."""
        detector = TakeoverDetector(threshold=3, window_s=10.0)
        assert _sessions(detector, [1.0, 1.0, 60.0, 1.0, 1.0]) == [False] * 5
        assert not detector.suspected(200.0)

    def test_suspicion_ends_once_a_session_lasts(self) -> None:
        """When the other client goes away, our session outlives the window: healthy again."""
        detector = TakeoverDetector(threshold=2, window_s=5.0)
        _sessions(detector, [1.0, 1.0])
        detector.connected(10.0)
        assert detector.suspected(12.0)
        assert not detector.suspected(15.5)

    def test_a_disconnect_without_a_session_counts_nothing(self) -> None:
        """A failed connect attempt (no CONNACK) is not a session."""
        detector = TakeoverDetector(threshold=2, window_s=5.0)
        assert not detector.disconnected(1.0)
        assert not detector.suspected(1.0)


class TestTlsContext:
    def test_no_tls_means_plain_tcp(self) -> None:
        assert client_tls_context(MqttSettings()) is None

    def test_tls_verifies_the_broker(self) -> None:
        """Certificates and host names are always checked."""
        context = client_tls_context(MqttSettings(tls=True))
        assert context is not None
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.check_hostname

    def test_half_a_client_certificate_is_refused(self) -> None:
        with pytest.raises(ValueError, match="go together"):
            MqttSettings(tls=True, tls_cert_file="c.pem")
