"""Commands the driver channel sent, until the phone acknowledges them (pure: no I/O).

Every ``cancel_job`` the channel sends (an offer withdrawn or expired, a leg taken back, a
late accept refused) carries a correlation id the app echoes in its ``commandAck``. A
command not acknowledged within ``ack_timeout_s`` is sent again with the same correlation
id (the app treats a repeat as the same command), at most ``max_sends`` times in all; a
command that could not be sent at all (driver offline, broker away) waits and is tried
again, for at most ``hold_s``. After that the tracker gives up and the edge reports it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from enum import StrEnum

from dispatcher.dispatch.driver_offers import CancelNotice
from dispatcher.links.vehicle_events import CommandAcked
from protocols.driver.models import AckResult


class AckVerdict(StrEnum):
    ACCEPTED = "accepted"  # the driver complies
    REJECTED = "rejected"  # the driver cannot comply (reason in the ack)
    UNTRACKED = "untracked"  # not a command of this tracker (an operator's, or a repeat)


@dataclass(frozen=True, slots=True)
class PendingCommand:
    """A command out and not yet acknowledged."""

    correlation_id: str
    notice: CancelNotice
    created_at: float
    due_at: float
    #: Sends that reached the broker.
    sends: int


@dataclass(slots=True)
class AckTracker:
    """Pending commands by correlation id."""

    ack_timeout_s: float = 5.0
    max_sends: int = 4
    hold_s: float = 600.0
    _pending: dict[str, PendingCommand] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._pending)

    def pending(self) -> tuple[PendingCommand, ...]:
        """Every command still waiting for its acknowledgement."""
        return tuple(self._pending.values())

    def sent(self, correlation_id: str, notice: CancelNotice, now: float, *, ok: bool) -> None:
        """Record an attempt to send (``ok``: the broker took it); the first one adds it."""
        old = self._pending.get(correlation_id)
        base = old or PendingCommand(correlation_id, notice, now, now, 0)
        self._pending[correlation_id] = replace(
            base, due_at=now + self.ack_timeout_s, sends=base.sends + (1 if ok else 0)
        )

    def acked(self, ev: CommandAcked) -> tuple[AckVerdict, PendingCommand | None]:
        """Match an acknowledgement to its command (from the same driver only)."""
        cmd = self._pending.get(ev.correlation_id)
        if cmd is None or cmd.notice.vehicle_id != ev.vehicle_id:
            return AckVerdict.UNTRACKED, None
        del self._pending[ev.correlation_id]
        verdict = AckVerdict.ACCEPTED if ev.result is AckResult.ACCEPTED else AckVerdict.REJECTED
        return verdict, cmd

    def due(self, now: float) -> tuple[list[PendingCommand], list[PendingCommand]]:
        """Commands to send again now, and commands given up (removed)."""
        again: list[PendingCommand] = []
        gave_up: list[PendingCommand] = []
        for cmd in list(self._pending.values()):
            if cmd.due_at > now:
                continue
            if cmd.sends >= self.max_sends or now - cmd.created_at >= self.hold_s:
                del self._pending[cmd.correlation_id]
                gave_up.append(cmd)
            else:
                again.append(cmd)
        return again, gave_up

    def forget_vehicle(self, vehicle_id: uuid.UUID) -> None:
        """Stop tracking the vehicle's commands, unsent and unreported (another daemon
        dispatches its facility now: :meth:`DriverLegChannel.forget`)."""
        for cid, cmd in list(self._pending.items()):
            if cmd.notice.vehicle_id == vehicle_id:
                del self._pending[cid]
