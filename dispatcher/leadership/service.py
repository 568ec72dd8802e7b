"""Leadership per facility against PostgreSQL: the supervised task ``fleetd.leadership``.

For each configured facility the daemon is ``active`` (it holds the facility's lease and
dispatches it) or ``standby``. :meth:`Leadership.start` tries every lease once before the
dispatch engine loads, so a lone daemon is active from its first plan on. :meth:`run`
then renews held leases every ``renew_s`` and, as a standby, tries to take a free or
expired lease every ``poll_s``. The dispatch engine hears of each change
(:class:`LeadershipListener`): a takeover waits for this daemon's spool to be flushed
(up to ``spool_wait_s``), then loads the facility's open missions and recovers them as a
restart does; a loss makes it forget the facility's missions and legs, sending nothing.

Stepping down happens at once, without any I/O, when the database says the lease is
another's (a renewal refused, or a fenced write refused: :meth:`fenced_out`), and when no
renewal got through in time to be sure the lease has not expired (the deadline of
:class:`~dispatcher.leadership.state.FacilityLease`). :meth:`leads` and :meth:`fence`
read the clock themselves, so the gate closes at that deadline even before this task
runs again. :meth:`release_all` (daemon stop) ends the tenures in the database so a
standby takes over at its next poll.

A daemon restarted on the same machine after a crash (``kill -9``) takes back its dead
predecessor's lease at once instead of waiting for it to expire: the holder id names the
host and pid (``hostname:pid:random``), and a holder of this host whose pid no longer
exists cannot write any more (``leadership.reclaim_dead_local``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import asyncpg
import structlog

from dispatcher.leadership.state import FacilityLease, Fence, LeaseTiming, Role, local_pid
from dispatcher.metrics import FACILITY_ACTIVE, FENCED_WRITES_REFUSED, LEADERSHIP_CHANGES
from dispatcher.ops.durable import UNREACHABLE, DurableWrites
from dispatcher.storage import leases

log = structlog.get_logger(__name__)

#: What a lease statement may fail with while the daemon carries on.
_FAILED: tuple[type[BaseException], ...] = (*UNREACHABLE, TimeoutError)

#: Longest a lease statement may take before the attempt counts as failed (seconds).
STATEMENT_TIMEOUT_S = 2.0


class LeadershipListener(Protocol):
    """What hears of this daemon's changes of role (the dispatch engine)."""

    async def facility_acquired(self, facility_id: uuid.UUID) -> None:
        """Load and recover the facility's open missions: this daemon dispatches it now."""
        ...

    async def facility_lost(self, facility_id: uuid.UUID) -> None:
        """Forget the facility's missions and legs, sending nothing."""
        ...


class Leadership:
    """Every configured facility's lease, as this daemon holds or waits for it."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        facilities: Sequence[tuple[uuid.UUID, str]],
        *,
        holder: str,
        timing: LeaseTiming,
        durable: DurableWrites | None = None,
        reclaim_dead_local: bool = True,
        spool_wait_s: float = 30.0,
        prefer: frozenset[uuid.UUID] = frozenset(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``prefer``: the facilities taken at start; the others (when ``prefer`` is not
        empty) only once they stayed free for ``timing.takeover_s`` after the start, so
        daemons started together split the facilities as their ``prefer`` lists say."""
        self.holder = holder
        self.timing = timing
        self._pool = pool
        self._durable = durable
        self._reclaim = reclaim_dead_local
        self._spool_wait_s = spool_wait_s
        self._clock = clock
        self._host = socket.gethostname()
        self.leases = {fid: FacilityLease(fid, key) for fid, key in facilities}
        #: The tenure (token) the listener was last told of, per facility (None: standby).
        self._told: dict[uuid.UUID, int | None] = {fid: None for fid in self.leases}
        self._changed = {fid: asyncio.Event() for fid in self.leases}
        self._listener: LeadershipListener | None = None
        self._closing = False
        self._prefer = prefer
        #: Standby polls for a facility do not begin before then (monotonic seconds).
        self._hold_off: dict[uuid.UUID, float] = {}
        for lease in self.leases.values():
            FACILITY_ACTIVE.labels(lease.key).set(0)

    def attach(self, listener: LeadershipListener) -> None:
        """Tell ``listener`` of every change of role from now on."""
        self._listener = listener

    # The gate (dispatcher.dispatch.facility_gate.FacilityGate) ---------------------------

    def leads(self, facility_id: uuid.UUID) -> bool:
        """Active, and the listener has loaded this tenure's missions: between taking the
        lease and the end of that load nothing is planned or sent for the facility (the
        engine's memory of it is empty; a new mission would go to a vehicle that still
        carries another on record). Writes during the load carry :meth:`fence`."""
        lease = self.leases.get(facility_id)
        return (
            lease is not None
            and lease.active(self._clock())
            and self._told.get(facility_id) == lease.token
        )

    def holds(self, facility_id: uuid.UUID) -> bool:
        """Whether this daemon holds the facility's lease now (:meth:`fence` is not None),
        without building the fence: asked per telemetry row and vehicle batch."""
        lease = self.leases.get(facility_id)
        return lease is not None and lease.holds(self._clock())

    def fence(self, facility_id: uuid.UUID) -> Fence | None:
        lease = self.leases.get(facility_id)
        return None if lease is None else lease.fence(self.holder, self._clock())

    def fenced_out(self, facility_id: uuid.UUID) -> None:
        FENCED_WRITES_REFUSED.inc()
        lease = self.leases.get(facility_id)
        if lease is not None and lease.role is Role.ACTIVE:
            self._step_down(lease, "fenced_write_refused")

    def roles(self) -> dict[str, str]:
        """Facility key -> ``active`` | ``standby`` (for ``/readyz``)."""
        return {
            lease.key: (Role.ACTIVE if self.leads(fid) else Role.STANDBY).value
            for fid, lease in self.leases.items()
        }

    # Start, run, stop -----------------------------------------------------------------------

    async def start(self) -> None:
        """Try every facility's lease once (before the engine loads: a lone daemon is
        active from the start). Facilities taken here need no ``facility_acquired``: the
        engine's first load covers them."""
        later = self._clock() + self.timing.takeover_s
        for lease in self.leases.values():
            if self._prefer and lease.facility_id not in self._prefer:
                self._hold_off[lease.facility_id] = later
                continue
            await self._try_acquire(lease)
            if lease.role is Role.ACTIVE:
                self._told[lease.facility_id] = lease.token

    async def run(self) -> None:
        """Renew, poll and tell the listener, until cancelled."""
        async with asyncio.TaskGroup() as tg:
            for lease in self.leases.values():
                tg.create_task(self._lease_loop(lease), name=f"fleetd.leadership.{lease.key}")
                tg.create_task(self._tell_loop(lease), name=f"fleetd.leadership.tell.{lease.key}")

    async def release_all(self) -> None:
        """Daemon stop: stop dispatching every facility, then end the tenures in the
        database so standbys take over at their next poll (a handover)."""
        self._closing = True
        for lease in self.leases.values():
            token = lease.token
            if lease.role is not Role.ACTIVE or token is None:
                continue
            self._step_down(lease, "released", log_event=None)
            try:
                async with asyncio.timeout(STATEMENT_TIMEOUT_S):
                    done = await leases.release(self._pool, lease.facility_id, self.holder, token)
            except _FAILED as exc:
                log.warning("leadership.release_failed", facility=lease.key, error=repr(exc))
                continue
            log.info("leadership.released", facility=lease.key, token=token, released=done)

    # Internals --------------------------------------------------------------------------------

    async def _lease_loop(self, lease: FacilityLease) -> None:
        timing = self.timing
        while not self._closing:
            now = self._clock()
            if lease.must_step_down(now):
                self._step_down(lease, "renewal_overdue")
            if lease.role is Role.ACTIVE:
                await asyncio.sleep(max(0.0, min(timing.renew_s, lease.valid_until - now)))
                if lease.role is Role.ACTIVE and not self._closing:
                    await self._renew(lease)
            else:
                hold_off = self._hold_off.pop(lease.facility_id, None)
                if hold_off is not None:
                    await asyncio.sleep(max(0.0, hold_off - now))
                await self._try_acquire(lease)
                if lease.role is Role.STANDBY:
                    await asyncio.sleep(timing.poll_s)

    async def _renew(self, lease: FacilityLease) -> None:
        token = lease.token
        assert token is not None
        sent_at = self._clock()
        budget = max(0.05, min(STATEMENT_TIMEOUT_S, lease.valid_until - sent_at))
        try:
            async with asyncio.timeout(budget):
                ok = await leases.renew(
                    self._pool, lease.facility_id, self.holder, token, self.timing.ttl_s
                )
        except _FAILED as exc:
            # Still ours until the deadline (the database cannot have expired it yet);
            # the next attempt comes before that, or the loop steps down.
            log.warning("leadership.renew_failed", facility=lease.key, error=type(exc).__name__)
            return
        if lease.role is not Role.ACTIVE or lease.token != token:
            return  # stepped down meanwhile (a fenced write)
        if ok:
            lease.renewed(sent_at, self.timing)
        else:
            self._step_down(lease, "lease_taken_or_expired")

    async def _try_acquire(self, lease: FacilityLease) -> None:
        if self._closing:
            return
        sent_at = self._clock()
        try:
            async with asyncio.timeout(STATEMENT_TIMEOUT_S):
                token = await leases.acquire(
                    self._pool, lease.facility_id, self.holder, self.timing.ttl_s
                )
                if token is None and self._reclaim:
                    dead = await self._dead_local_holder(lease.facility_id)
                    if dead is not None:
                        token = await leases.acquire(
                            self._pool, lease.facility_id, self.holder, self.timing.ttl_s,
                            reclaim=dead,
                        )  # fmt: skip
        except _FAILED as exc:
            log.debug("leadership.acquire_failed", facility=lease.key, error=type(exc).__name__)
            return
        if token is None or self._closing:
            return
        lease.acquired(token, sent_at, self.timing)
        FACILITY_ACTIVE.labels(lease.key).set(1)
        LEADERSHIP_CHANGES.labels(lease.key, Role.ACTIVE.value).inc()
        log.info("leadership.acquired", facility=lease.key, token=token, holder=self.holder)
        self._changed[lease.facility_id].set()

    async def _dead_local_holder(self, facility_id: uuid.UUID) -> tuple[str, int] | None:
        """The lease's (holder, token) when its holder is a process of this machine that
        no longer exists (a crashed predecessor): safe to take at once."""
        row = await leases.read(self._pool, facility_id)
        if row is None or not row.valid or row.holder == self.holder:
            return None
        pid = local_pid(row.holder, self._host)
        if pid is None or pid == os.getpid() or _pid_alive(pid):
            return None
        log.info("leadership.reclaiming_dead_holder", holder=row.holder, token=row.token)
        return row.holder, row.token

    def _step_down(
        self, lease: FacilityLease, why: str, *, log_event: str | None = "leadership.lost"
    ) -> None:
        """Standby now, synchronously: the gate closes before anything else runs."""
        token = lease.token
        lease.lost()
        FACILITY_ACTIVE.labels(lease.key).set(0)
        LEADERSHIP_CHANGES.labels(lease.key, Role.STANDBY.value).inc()
        if log_event is not None:
            log.warning(log_event, facility=lease.key, token=token, reason=why)
        self._changed[lease.facility_id].set()

    async def _tell_loop(self, lease: FacilityLease) -> None:
        """Bring the listener in line with the lease's role (a takeover's load may take a
        while: it never delays a renewal, which runs in :meth:`_lease_loop`)."""
        changed = self._changed[lease.facility_id]
        fid = lease.facility_id
        while True:
            await changed.wait()
            changed.clear()
            while not self._closing:
                current = lease.token if lease.role is Role.ACTIVE else None
                told = self._told[fid]
                if told == current:
                    break
                try:
                    if told is not None:  # a tenure ended (then maybe the next began)
                        if self._listener is not None:
                            await self._listener.facility_lost(fid)
                        self._told[fid] = None
                        continue
                    await self._wait_spool()
                    if self._listener is not None:
                        await self._listener.facility_acquired(fid)
                    self._told[fid] = current
                except UNREACHABLE as exc:
                    log.warning("leadership.takeover_deferred", facility=lease.key, error=repr(exc))
                    await asyncio.sleep(1.0)

    async def _wait_spool(self) -> None:
        """Rows this daemon spooled while PostgreSQL was away are written before the
        facility's missions are read back (up to ``spool_wait_s``)."""
        durable = self._durable
        if durable is None or durable.spool.empty:
            return
        deadline = self._clock() + self._spool_wait_s
        log.info("leadership.waiting_for_spool", rows=len(durable.spool))
        while not durable.spool.empty and self._clock() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
