"""Token secrets, hashing, the authentication cache and ``--expires`` parsing (no I/O)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.auth.principal import Principal
from dispatcher.auth.roles import Role
from dispatcher.auth.tokens import (
    SECRET_PREFIX,
    AuthResult,
    DenyReason,
    TokenCache,
    generate_secret,
    hash_token,
    looks_like_secret,
)
from dispatcher.cli.token import parse_expires


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _ok(token_id: uuid.UUID, expires_at: datetime | None = None) -> AuthResult:
    principal = Principal(token_id, Role.OPERATOR, uuid.uuid4())
    return AuthResult(principal, None, token_id, expires_at)


class TestSecrets:
    def test_secret_has_prefix_and_256_bits(self) -> None:
        secret = generate_secret()
        assert secret.startswith(SECRET_PREFIX)
        assert len(secret) == len(SECRET_PREFIX) + 43  # 32 bytes, url-safe base64, no padding

    def test_secrets_are_unique(self) -> None:
        assert len({generate_secret() for _ in range(1000)}) == 1000

    def test_hash_is_sha256_of_the_secret(self) -> None:
        secret = generate_secret()
        assert hash_token(secret) == hashlib.sha256(secret.encode()).digest()
        assert len(hash_token(secret)) == 32

    def test_hash_differs_per_secret(self) -> None:
        assert hash_token("fltd_a" * 3) != hash_token("fltd_b" * 3)

    @pytest.mark.parametrize(
        ("secret", "ok"),
        [
            (generate_secret(), True),
            ("", False),
            ("Bearer x", False),
            ("fltd_", False),
            ("fltd_" + "x" * 300, False),
            ("abc_" + "x" * 43, False),
        ],
    )
    def test_shape_check(self, secret: str, ok: bool) -> None:
        assert looks_like_secret(secret) is ok


class TestTokenCache:
    def test_hit_within_ttl(self) -> None:
        clock = FakeClock()
        cache = TokenCache(5.0, clock=clock)
        result = _ok(uuid.uuid4())
        cache.put(b"h", result)
        clock.now += 4.9
        assert cache.get(b"h") is result

    def test_miss_after_ttl(self) -> None:
        """Revocation elsewhere takes effect once the entry is older than the TTL."""
        clock = FakeClock()
        cache = TokenCache(5.0, clock=clock)
        cache.put(b"h", _ok(uuid.uuid4()))
        clock.now += 5.0
        assert cache.get(b"h") is None
        assert len(cache) == 0

    def test_cached_principal_never_outlives_token_expiry(self) -> None:
        cache = TokenCache(5.0, clock=FakeClock())
        cache.put(b"h", _ok(uuid.uuid4(), expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        assert cache.get(b"h") is None

    def test_negative_results_are_cached(self) -> None:
        cache = TokenCache(5.0, clock=FakeClock())
        refused = AuthResult(None, DenyReason.UNKNOWN)
        cache.put(b"h", refused)
        assert cache.get(b"h") is refused

    def test_invalidate_one_token(self) -> None:
        cache = TokenCache(5.0, clock=FakeClock())
        keep, drop = uuid.uuid4(), uuid.uuid4()
        cache.put(b"keep", _ok(keep))
        cache.put(b"drop", _ok(drop))
        cache.invalidate(drop)
        assert cache.get(b"drop") is None
        assert cache.get(b"keep") is not None

    def test_bounded(self) -> None:
        cache = TokenCache(5.0, max_entries=10, clock=FakeClock())
        for i in range(25):
            cache.put(str(i).encode(), _ok(uuid.uuid4()))
        assert len(cache) <= 10

    def test_flood_of_bogus_tokens_keeps_the_recently_used(self) -> None:
        """10,000 unknown tokens evict the least recently used entries, one at a time.

        A wholesale flush on overflow would throw out every real operator's entry too and
        send each of their next requests to the database.
        """
        clock = FakeClock()
        cache = TokenCache(5.0, max_entries=1000, clock=clock)
        real = _ok(uuid.uuid4())
        cache.put(b"real", real)
        for i in range(10_000):
            cache.put(f"bogus-{i}".encode(), AuthResult(None, DenyReason.UNKNOWN))
            if i % 100 == 0:
                assert cache.get(b"real") is real  # in use, so never the eldest
        assert cache.get(b"real") is real
        assert len(cache) == 1000
        assert cache.get(b"bogus-0") is None
        assert cache.get(b"bogus-9999") is not None

    def test_zero_ttl_disables(self) -> None:
        cache = TokenCache(0.0, clock=FakeClock())
        cache.put(b"h", _ok(uuid.uuid4()))
        assert cache.get(b"h") is None


class TestParseExpires:
    now = datetime(2030, 1, 1, tzinfo=UTC)

    @pytest.mark.parametrize(
        ("text", "delta"),
        [
            ("30d", timedelta(days=30)),
            ("12h", timedelta(hours=12)),
            ("45m", timedelta(minutes=45)),
            ("2w", timedelta(weeks=2)),
            ("90s", timedelta(seconds=90)),
        ],
    )
    def test_durations(self, text: str, delta: timedelta) -> None:
        assert parse_expires(text, now=self.now) == self.now + delta

    def test_iso_with_zone(self) -> None:
        when = parse_expires("2030-02-01T12:00:00+02:00", now=self.now)
        assert when == datetime(2030, 2, 1, 10, tzinfo=UTC)

    def test_naive_iso_is_utc(self) -> None:
        assert parse_expires("2030-02-01T12:00:00", now=self.now) == datetime(
            2030, 2, 1, 12, tzinfo=UTC
        )

    @pytest.mark.parametrize("text", ["soon", "0d", "-1h", "2029-12-31T00:00:00Z", "12x"])
    def test_refused(self, text: str) -> None:
        with pytest.raises(ValueError, match="--expires"):
            parse_expires(text, now=self.now)


class TestSingleFlight:
    async def test_concurrent_misses_of_one_token_make_one_look_up(self) -> None:
        """Twenty requests with the same expired token while its look-up runs: one query,
        one result for all; a later miss queries again."""
        cache = TokenCache(ttl_s=0.0)  # nothing stays cached: every call is a miss
        calls = 0
        gate = asyncio.Event()
        principal = Principal(uuid.uuid4(), Role.OPERATOR, None)

        async def fetch() -> AuthResult:
            nonlocal calls
            calls += 1
            await gate.wait()
            return AuthResult(principal, None, principal.token_id)

        waiting = [asyncio.create_task(cache.load(b"h" * 32, fetch)) for _ in range(20)]
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(*waiting)
        assert calls == 1
        assert {r.principal for r in results} == {principal}
        await cache.load(b"h" * 32, fetch)
        assert calls == 2

    async def test_a_failed_look_up_lets_the_others_try_their_own(self) -> None:
        """The first look-up fails (database away): its error is its own; the requests
        that waited for it look the token up themselves."""
        cache = TokenCache()
        gate = asyncio.Event()
        calls = 0
        principal = Principal(uuid.uuid4(), Role.OPERATOR, None)

        async def failing() -> AuthResult:
            nonlocal calls
            calls += 1
            await gate.wait()
            raise OSError("connection refused")

        async def working() -> AuthResult:
            nonlocal calls
            calls += 1
            return AuthResult(principal, None, principal.token_id)

        first = asyncio.create_task(cache.load(b"k" * 32, failing))
        await asyncio.sleep(0)
        second = asyncio.create_task(cache.load(b"k" * 32, working))
        await asyncio.sleep(0)
        gate.set()
        with pytest.raises(OSError, match="connection refused"):
            await first
        assert (await second).principal == principal
        assert calls == 2
