"""When to re-plan: changes are gathered for ``quiet_s``, but never held past ``max_wait_s``.

A burst of changes (twenty vehicles reporting at once, a batch of missions) makes one
re-plan, not twenty; a steady trickle still re-plans at least every ``max_wait_s``. Pure:
the caller passes the clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Debouncer:
    """Collects "something changed" marks and says when a re-plan is due."""

    quiet_s: float
    max_wait_s: float
    _first: float | None = None
    _last: float | None = None

    def mark(self, now: float) -> None:
        """Something changed at ``now``."""
        if self._first is None:
            self._first = now
        self._last = now

    @property
    def pending(self) -> bool:
        return self._first is not None

    def due_at(self) -> float | None:
        """When the re-plan is due (None: nothing changed)."""
        if self._first is None or self._last is None:
            return None
        return min(self._last + self.quiet_s, self._first + self.max_wait_s)

    def take(self, now: float) -> bool:
        """True (and reset) when a re-plan is due at ``now``."""
        due = self.due_at()
        if due is None or now < due:
            return False
        self._first = self._last = None
        return True
