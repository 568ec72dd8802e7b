"""Counting and logging rejected vehicle messages without flooding the log.

Every rejection is counted (``fleetd_messages_rejected_total{link, reason}``); the log
gets the first rejection of each reason and then one summary line a second at most, so
a robot spamming bad messages cannot drown the log or slow the link.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from dispatcher.metrics import MESSAGES_REJECTED
from protocols.errors import RejectReason

log = structlog.get_logger(__name__)


class Rejections:
    """Per-link rejection bookkeeping."""

    def __init__(
        self, link: str, *, log_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._link = link
        self._interval = log_interval_s
        self._clock = clock
        self._counters = {r: MESSAGES_REJECTED.labels(link, r.value) for r in RejectReason}
        self._last_log: dict[RejectReason, float] = {}
        self._suppressed: dict[RejectReason, int] = {}
        self.counts: dict[RejectReason, int] = dict.fromkeys(RejectReason, 0)

    def record(self, reason: RejectReason, detail: str, topic: str) -> None:
        self._counters[reason].inc()
        self.counts[reason] += 1
        now = self._clock()
        last = self._last_log.get(reason)
        if last is not None and now - last < self._interval:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return
        self._last_log[reason] = now
        log.warning(
            "vehicle_message.rejected",
            link=self._link,
            reason=reason.value,
            detail=detail[:300],
            topic=topic[:200],
            suppressed_since_last=self._suppressed.pop(reason, 0),
        )
