"""Counting and logging rejected vehicle messages without flooding the log.

Every rejection is counted (``fleetd_messages_rejected_total{link, reason}``); the log
gets the first rejection of each reason and vehicle (the ``subject`` the topic names, when
it names one) and then one summary line per interval at most, so a robot spamming bad
messages cannot drown the log or slow the link, nor hide another robot's first mistake.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from dispatcher.metrics import MESSAGES_REJECTED
from protocols.errors import RejectReason

log = structlog.get_logger(__name__)

#: Log throttling keys (reason, vehicle) remembered at most; beyond, forgotten at once.
_MAX_KEYS = 10_000


class Rejections:
    """Per-link rejection bookkeeping."""

    def __init__(
        self, link: str, *, log_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._link = link
        self._interval = log_interval_s
        self._clock = clock
        self._counters = {r: MESSAGES_REJECTED.labels(link, r.value) for r in RejectReason}
        self._last_log: dict[tuple[RejectReason, str | None], float] = {}
        self._suppressed: dict[tuple[RejectReason, str | None], int] = {}
        self.counts: dict[RejectReason, int] = dict.fromkeys(RejectReason, 0)

    def record(
        self, reason: RejectReason, detail: str, topic: str, *, subject: str | None = None
    ) -> None:
        """Count one rejection; log it unless this reason and ``subject`` (the vehicle the
        topic names, None when it names none) was logged less than an interval ago."""
        self._counters[reason].inc()
        self.counts[reason] += 1
        now = self._clock()
        key = (reason, subject)
        last = self._last_log.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        if len(self._last_log) >= _MAX_KEYS:
            # Topics with ever new vehicle names must not grow this without bound.
            self._last_log.clear()
            self._suppressed.clear()
        self._last_log[key] = now
        log.warning(
            "vehicle_message.rejected",
            link=self._link,
            reason=reason.value,
            vehicle=subject[:200] if subject is not None else None,
            detail=detail[:300],
            topic=topic[:200],
            suppressed_since_last=self._suppressed.pop(key, 0),
        )
