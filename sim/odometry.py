"""Empty and loaded distance per mission in a live run, from the simulator's odometers.

A live run cannot ask fleetd how far its vehicles drove: fleetd knows where they said they
were, not the road between. The simulator knows, so it measures: each simulated vehicle
counts the metres it drives (``VirtualDevice.odometer_m``), and its host keeps an
:class:`OdometerTrace` of (simulated second, odometer) marks: when the vehicle sets off,
when it stops, and every ``every_s`` while it moves. Between two marks it moved at one
speed (or stood), so the odometer at any moment is the linear interpolation of the marks
around it (:func:`odometer_at`).

Which stretches belong to which mission comes from fleetd's own record of the mission
(its timeline: ``assigned``, ``reassigned``, ``unassigned``, ``pickup_completed``...),
as :func:`mission_distances` reads it:

- *empty distance*: the metres each vehicle that held the mission drove from being given
  it to the pickup (the vehicle that picked up), or to losing it (``unassigned``, or
  ``reassigned`` to another vehicle): a withdrawn vehicle's drive towards the pickup was
  driven empty on this mission's account too. A driver who declined the offer or let it
  expire never set off for it: not counted. A vehicle given the mission while still
  finishing an earlier one is counted from that one's completion, so no metre counts
  twice;
- *loaded distance*: the picking vehicle's metres from the pickup to the completion.

Everything here is pure; the hosts (:mod:`sim.host`) record, the run (:mod:`sim.live`)
reads the timelines and calls :func:`mission_distances`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: (simulated seconds, odometer metres)
Mark = tuple[float, float]


class OdometerTrace:
    """One vehicle's odometer marks, recorded by its host as the vehicle is stepped."""

    def __init__(self, every_s: float) -> None:
        """``every_s``: simulated seconds between marks while the vehicle keeps moving (a
        speed change between two marks is smoothed over at most this long)."""
        self.every_s = every_s
        self.moving = False
        self._marks: list[Mark] = []
        self._taken = 0
        self._last_t = -math.inf

    def _mark(self, t: float, odo: float) -> None:
        self._marks.append((t, odo))
        self._last_t = t

    def observe(self, t_before: float, t_after: float, odo_before: float, odo_after: float) -> None:
        """One step of the vehicle from ``t_before`` to ``t_after`` (simulated seconds)."""
        moved = odo_after > odo_before
        if moved != self.moving:
            # Set off or stopped in this step: the mark goes at its start, the moment the
            # last step ended (the error is at most one step's time).
            self._mark(t_before, odo_before)
        elif moved and t_after - self._last_t >= self.every_s:
            self._mark(t_after, odo_after)
        self.moving = moved

    def halt(self, t: float, odo: float) -> None:
        """The vehicle is not stepped from ``t`` on (offline, silent, the run's end)."""
        if self.moving:
            self._mark(t, odo)
        self.moving = False

    def close(self, t: float, odo: float) -> None:
        """The last mark, at the run's end."""
        self.moving = False
        self._mark(t, odo)

    def take(self) -> list[Mark]:
        """The marks recorded since the last call."""
        new = self._marks[self._taken :]
        self._taken = len(self._marks)
        return new


def odometer_at(marks: Sequence[Mark], t: float) -> float:
    """The odometer at ``t``: interpolated between the marks around it (before the first
    mark the vehicle had not moved since; after the last it has not moved)."""
    if not marks:
        return 0.0
    i = bisect.bisect_right(marks, t, key=lambda m: m[0])
    if i == 0:
        return marks[0][1]
    if i == len(marks):
        return marks[-1][1]
    (t_a, o_a), (t_b, o_b) = marks[i - 1], marks[i]
    if t_b <= t_a:
        return o_b
    return o_a + (o_b - o_a) * (t - t_a) / (t_b - t_a)


def travelled(marks: Sequence[Mark], start_s: float, end_s: float) -> float:
    """Metres driven between two moments (0 when ``end_s`` is not after ``start_s``)."""
    if end_s <= start_s:
        return 0.0
    return max(0.0, odometer_at(marks, end_s) - odometer_at(marks, start_s))


@dataclass(frozen=True, slots=True)
class Step:
    """One entry of a mission's timeline: simulated time, event, the vehicle it names."""

    t_s: float
    event: str
    vehicle: str | None


@dataclass(frozen=True, slots=True)
class Holding:
    """A vehicle driving for a mission: from being given it to the pickup or losing it."""

    vehicle: str
    start_s: float
    end_s: float
    picked_up: bool


def holdings(steps: Sequence[Step]) -> list[Holding]:
    """The stretches of ``steps`` (one mission's timeline, in order) in which a vehicle
    was on its way to the pickup."""
    out: list[Holding] = []
    current: tuple[str, float] | None = None
    for st in steps:
        if st.event in ("assigned", "reassigned") and st.vehicle is not None:
            if current is not None and current[0] != st.vehicle:
                out.append(Holding(current[0], current[1], st.t_s, picked_up=False))
            if current is None or current[0] != st.vehicle:
                current = (st.vehicle, st.t_s)
        elif st.event in ("declined", "expired"):
            current = None  # an offer never taken: the driver did not set off for it
        elif current is not None and st.event in ("unassigned", "failed", "cancelled"):
            out.append(Holding(current[0], current[1], st.t_s, picked_up=False))
            current = None
        elif current is not None and st.event == "pickup_completed":
            out.append(Holding(current[0], current[1], st.t_s, picked_up=True))
            return out
    return out


@dataclass(frozen=True, slots=True)
class Distances:
    empty_m: float
    #: None unless the mission was completed in the run.
    loaded_m: float | None
    #: Whether any holder's odometer was recorded (False: nothing to say).
    measured: bool


def mission_distances(
    timelines: Mapping[str, Sequence[Step]],
    completions: Mapping[str, tuple[str, float, float]],
    traces: Mapping[str, Sequence[Mark]],
) -> dict[str, Distances]:
    """Empty and loaded metres of each mission of ``timelines`` (mission id -> steps).

    ``completions``: mission id -> (vehicle, pickup s, completion s) of the missions
    completed in the run (each vehicle's earlier jobs, and the loaded stretch);
    ``traces``: vehicle -> its odometer marks. Vehicles are named alike in all three.
    """
    done_by: dict[str, list[tuple[float, str]]] = {}
    for mission_id, (vehicle, _, completed) in completions.items():
        done_by.setdefault(vehicle, []).append((completed, mission_id))
    out: dict[str, Distances] = {}
    for mission_id, steps in timelines.items():
        empty = 0.0
        measured = False
        for h in holdings(steps):
            marks = traces.get(h.vehicle)
            if not marks:
                continue
            measured = True
            # Still finishing an earlier job when given this one: from that one's end.
            earlier = [
                t for t, other in done_by.get(h.vehicle, ()) if other != mission_id and t <= h.end_s
            ]
            start = max([h.start_s, *earlier])
            empty += travelled(marks, start, h.end_s)
        loaded = None
        done = completions.get(mission_id)
        if done is not None and traces.get(done[0]):
            loaded = travelled(traces[done[0]], done[1], done[2])
            measured = True
        out[mission_id] = Distances(empty, loaded, measured)
    return out
