"""Who may hold an event stream open, and for how long.

Two rules (issue 13, items 2 and 6):

- :class:`StreamSlots` caps the streams open at once, per token and in total, so a few
  hundred dashboards (or one leaked token) cannot take every database connection the
  writers share with the streams' reads;
- :class:`TokenWatch` re-checks the stream's token while it is open: a stream ends when
  its token is revoked (through the API at once, by ``fleetd token revoke`` within the
  token cache's lifetime) or expires.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from dispatcher.auth.tokens import TokenCache, lookup
from dispatcher.storage.db import CONNECT_ERRORS

#: A failed check keeps the stream: its own reads fail and back off meanwhile.
_CHECK_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *CONNECT_ERRORS)


class SlotRefusal(StrEnum):
    """Why a stream was not opened."""

    PER_TOKEN = "per_token"
    TOTAL = "total"


@dataclass(frozen=True, slots=True)
class StreamSlot:
    """One open stream's place; give it back with :meth:`StreamSlots.release`."""

    token_id: uuid.UUID


class StreamSlots:
    """Counts open streams per token and in total; refuses one beyond either cap."""

    def __init__(self, *, total: int, per_token: int) -> None:
        if total < 1 or per_token < 1:
            raise ValueError("stream caps must be positive")
        self.total = total
        self.per_token = per_token
        self._open: dict[uuid.UUID, int] = {}
        self._count = 0

    @property
    def open(self) -> int:
        """Streams open now."""
        return self._count

    def acquire(self, token_id: uuid.UUID) -> StreamSlot | SlotRefusal:
        """A slot for one more stream of ``token_id``, or why there is none."""
        if self._open.get(token_id, 0) >= self.per_token:
            return SlotRefusal.PER_TOKEN
        if self._count >= self.total:
            return SlotRefusal.TOTAL
        self._open[token_id] = self._open.get(token_id, 0) + 1
        self._count += 1
        return StreamSlot(token_id)

    def release(self, slot: StreamSlot) -> None:
        """Give a slot back (once per :meth:`acquire` that returned it)."""
        left = self._open.get(slot.token_id, 0) - 1
        if left > 0:
            self._open[slot.token_id] = left
        else:
            self._open.pop(slot.token_id, None)
        self._count = max(self._count - 1, 0)


class TokenWatch:
    """Whether the token a stream was opened with is still good, checked every ``every_s``.

    Checks go through the API's :class:`TokenCache`: a valid token costs a query at most
    once per cache lifetime, and a revocation through the API (which invalidates the
    cache) or an expiry (the cache never outlives ``expires_at``) is seen at the next check.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        secret: str,
        cache: TokenCache,
        *,
        every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._secret = secret
        self._cache = cache
        self._every = every_s
        self._clock = clock
        self._next = clock() + every_s

    async def still_valid(self) -> bool:
        """False once the token is revoked, expired or unknown; True between checks."""
        now = self._clock()
        if now < self._next:
            return True
        self._next = now + self._every
        try:
            result = await lookup(self._pool, self._secret, cache=self._cache)
        except _CHECK_ERRORS:
            return True
        return result.principal is not None
