"""The one retry/back-off rule of the daemon: capped exponential back-off with full jitter.

Every loop that retries something that failed (the MQTT connect, the telemetry writer,
the audit sealer, the event hub's LISTEN connection) asks a :class:`Backoff` how long to
wait. After ``n`` failures in a row the wait is drawn uniformly from
``[floor_s, min(cap_s, base_s * 2**n)]`` ("full jitter": many daemons or streams that
failed together do not retry together). A success resets the count.

Why not PyPI ``stamina``: it retries one call until it succeeds or gives up, while these
loops never give up, wait in ways of their own (the event hub's pause ends early when
its last stream leaves) and keep the count across iterations. The policy is the part
worth sharing, so that is what lives here.

Tests inject ``rand`` and ``sleep`` and never wait.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

#: ``(low, high) -> a number in [low, high]``; :func:`random.uniform` in production.
Rand = Callable[[float, float], float]
#: ``seconds -> awaitable``; :func:`asyncio.sleep` in production.
Sleep = Callable[[float], Awaitable[None]]

#: Past this many failures the ceiling stays at ``cap_s`` anyway; stops 2**n overflowing.
_MAX_EXPONENT = 62


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """How long to wait after the ``n``-th failure in a row (n counts from 0)."""

    base_s: float = 0.2
    cap_s: float = 30.0
    #: The shortest wait; a loop with a natural period (a flush interval) uses that.
    floor_s: float = 0.0

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.cap_s <= 0 or self.floor_s < 0:
            raise ValueError("base_s and cap_s must be positive, floor_s not negative")

    def ceiling(self, failures: int) -> float:
        """The longest wait after ``failures`` failures in a row (never below the floor)."""
        grown = self.base_s * 2.0 ** min(max(failures, 0), _MAX_EXPONENT)
        return max(self.floor_s, min(self.cap_s, grown))

    def delay(self, failures: int, rand: Rand = random.uniform) -> float:
        """A jittered wait in ``[floor_s, ceiling(failures)]``."""
        return rand(self.floor_s, self.ceiling(failures))


class Backoff:
    """One retrying loop's back-off state: failures counted since the last success."""

    def __init__(
        self,
        policy: BackoffPolicy,
        *,
        rand: Rand = random.uniform,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.policy = policy
        self._rand = rand
        self._sleep = sleep
        self._failures = 0

    @property
    def failures(self) -> int:
        """Failures in a row so far."""
        return self._failures

    def reset(self) -> None:
        """Record a success: the next failure waits as little as the first did."""
        self._failures = 0

    def next_delay(self) -> float:
        """Record a failure and return how long to wait before trying again."""
        delay = self.policy.delay(self._failures, self._rand)
        self._failures = min(self._failures + 1, _MAX_EXPONENT)
        return delay

    async def wait(self) -> float:
        """Record a failure and sleep the back-off; returns the seconds waited."""
        delay = self.next_delay()
        await self._sleep(delay)
        return delay
