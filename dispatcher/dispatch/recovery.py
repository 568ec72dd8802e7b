"""What to do when a leg goes wrong, and what an operator may decide then (pure).

A mission whose rider is not on board yet is simply planned again (``reassigned`` with
the reason). A rider on board is never moved silently: the mission is held for an
operator, who resolves it with one of the choices the situation allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dispatcher.dispatch.legs import LegFailure, LegProgressKind
from dispatcher.missions.lifecycle import MissionEvent, MissionStatus


class Recovery(StrEnum):
    """The engine's answer to a lost leg."""

    REPLAN = "replan"  # not picked up: plan it again at once
    HOLD = "hold"  # on board: alert, wait for an operator
    DROP = "drop"  # nothing to do for the mission (final, or a charging trip)


@dataclass(frozen=True, slots=True)
class LostLeg:
    """A leg that will not be completed, and why."""

    failure: LegFailure
    picked_up: bool
    status: MissionStatus | None  # None: a charging trip


def recover(lost: LostLeg) -> Recovery:
    """Decide what happens to the mission of ``lost``."""
    if lost.status is None or lost.status.is_final:
        return Recovery.DROP
    if lost.failure is LegFailure.CANCELLED and lost.status is MissionStatus.CANCELLED:
        return Recovery.DROP
    return Recovery.HOLD if lost.picked_up else Recovery.REPLAN


def refusal_event(failure: LegFailure) -> MissionEvent | None:
    """The mission event a refusal records at once (a driver's decline or expiry); other
    refusals are recorded by the ``reassigned`` that follows, with their reason."""
    if failure is LegFailure.DECLINED:
        return MissionEvent.DECLINED
    if failure is LegFailure.OFFER_EXPIRED:
        return MissionEvent.EXPIRED
    return None


def failure_of(kind: LegProgressKind, failure: LegFailure | None) -> LegFailure | None:
    """The failure a progress report carries (None when it is not a refusal or failure)."""
    if kind is LegProgressKind.REFUSED:
        return failure or LegFailure.ORDER_REJECTED
    if kind is LegProgressKind.FAILED:
        return failure or LegFailure.FATAL_ERROR
    return None


class Resolution(StrEnum):
    """What an operator may decide for a held mission (``POST /v1/missions/{id}/resolve``)."""

    FAIL = "fail"  # the transport did not happen: the mission fails
    COMPLETE = "complete"  # delivered by hand: the mission completes
    REASSIGN = "reassign"  # another vehicle takes the rider from where they are


def choices(status: MissionStatus, held: bool) -> tuple[Resolution, ...]:
    """The resolutions allowed for a mission in ``status``; ``held``: waiting for an
    operator after its vehicle was lost with the rider on board."""
    if status.is_final:
        return ()
    if held:
        return (Resolution.FAIL, Resolution.COMPLETE, Resolution.REASSIGN)
    return (Resolution.FAIL,)


def resolution_events(resolution: Resolution) -> tuple[MissionEvent, ...]:
    """The mission events a resolution of a held (in progress) mission records."""
    if resolution is Resolution.FAIL:
        return (MissionEvent.FAILED,)
    if resolution is Resolution.COMPLETE:
        return (MissionEvent.DROPOFF_COMPLETED, MissionEvent.COMPLETED)
    return ()  # reassign: the engine records ``reassigned`` when a vehicle is chosen
