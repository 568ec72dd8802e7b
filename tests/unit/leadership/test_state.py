"""The pure leadership decisions: timings, roles, the step-down deadline, holder ids."""

from __future__ import annotations

import socket
import uuid

import pytest

from dispatcher.leadership.state import (
    FacilityLease,
    Fence,
    FencedOut,
    LeaseTiming,
    Role,
    default_holder,
    local_pid,
)

FACILITY = uuid.uuid4()


def test_default_timing_keeps_the_takeover_promise() -> None:
    t = LeaseTiming.of(10.0)
    # Killed right after a renewal: the lease expires ttl later, a standby polls within
    # poll_s after that; both together stay under takeover_s.
    assert t.ttl_s + t.poll_s < t.takeover_s
    assert t.renew_s == pytest.approx(t.ttl_s / 3)
    assert 0 < t.margin_s < t.renew_s
    assert t.poll_s == 1.0


def test_overrides_and_small_takeovers() -> None:
    t = LeaseTiming.of(2.0, renew_s=0.3, poll_s=0.1)
    assert (t.renew_s, t.poll_s) == (0.3, 0.1)
    assert t.ttl_s + t.poll_s < 2.0
    assert LeaseTiming.of(1.0).ttl_s > 0


def test_a_lease_is_active_until_its_deadline_counted_from_the_send() -> None:
    t = LeaseTiming.of(10.0)
    lease = FacilityLease(FACILITY, "north")
    assert not lease.active(0.0) and lease.fence("me", 0.0) is None
    assert not lease.holds(0.0)
    lease.acquired(7, sent_at=100.0, timing=t)
    deadline = 100.0 + t.ttl_s - t.margin_s
    assert lease.role is Role.ACTIVE and lease.valid_until == deadline
    assert lease.active(deadline - 0.01)
    assert lease.fence("me", deadline - 0.01) == Fence(FACILITY, "me", 7)
    assert lease.holds(deadline - 0.01)
    # No renewal got through: not active at the deadline, and due to step down.
    assert not lease.active(deadline)
    assert lease.fence("me", deadline) is None
    assert not lease.holds(deadline)
    assert lease.must_step_down(deadline)


def test_a_renewal_moves_the_deadline_forward_never_back() -> None:
    t = LeaseTiming.of(10.0)
    lease = FacilityLease(FACILITY, "north")
    lease.acquired(1, sent_at=100.0, timing=t)
    lease.renewed(sent_at=103.0, timing=t)
    assert lease.valid_until == 103.0 + t.ttl_s - t.margin_s
    lease.renewed(sent_at=101.0, timing=t)  # a late answer to an older request
    assert lease.valid_until == 103.0 + t.ttl_s - t.margin_s


def test_losing_the_lease_is_immediate() -> None:
    lease = FacilityLease(FACILITY, "north")
    lease.acquired(3, sent_at=0.0, timing=LeaseTiming.of(10.0))
    lease.lost()
    assert lease.role is Role.STANDBY and lease.token is None
    assert not lease.active(0.1) and not lease.must_step_down(0.1)


def test_fenced_out_names_the_stale_tenure() -> None:
    exc = FencedOut(Fence(FACILITY, "host:1:abc", 4))
    assert "stale fencing token 4" in str(exc) and exc.fence.token == 4


def test_holder_ids_name_host_and_pid() -> None:
    holder = default_holder(4321, "cafe")
    host = socket.gethostname()
    assert holder == f"{host}:4321:cafe"
    assert local_pid(holder, host) == 4321
    assert local_pid(holder, "elsewhere") is None
    assert local_pid("custom-name", host) is None
    assert local_pid(f"{host}:notapid:x", host) is None
    assert default_holder(1) != default_holder(1)  # random part
