"""Liveness decisions: when a message makes a vehicle online, when silence makes it offline.

Pure functions over times in epoch seconds, so they are table-tested without a clock.
"""

from __future__ import annotations


def seen_at(received_at: float, message_time: float | None, retained: bool) -> float | None:
    """When the vehicle was last known alive, judging by this message.

    A live message proves the vehicle is alive now. A retained one was stored by the
    broker at some earlier time: only the time the vehicle wrote into it counts (never
    later than now, whatever the vehicle's clock says), and a retained message without a
    readable time proves nothing (``None``).
    """
    if not retained:
        return received_at
    if message_time is None:
        return None
    return min(message_time, received_at)


def is_fresh(last_seen: float | None, now: float, timeout_s: float) -> bool:
    """A vehicle is alive while its last sign of life is younger than the timeout."""
    return last_seen is not None and now - last_seen < timeout_s


def offline_deadline(last_seen: float, timeout_s: float) -> float:
    """The moment silence turns an online vehicle offline."""
    return last_seen + timeout_s
