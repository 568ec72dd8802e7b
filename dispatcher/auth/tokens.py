"""API tokens: creation, revocation and authentication. Only SHA-256 hashes are stored.

A secret looks like ``fltd_`` + 43 url-safe characters (32 random bytes). It is shown once,
by :func:`create_token`; the database keeps ``sha256(secret)`` in ``api_tokens.token_hash``.

Authentication results are cached in process (:class:`TokenCache`, 5 s by default) so a
busy API does not query Postgres per request. Consequences, documented in ``docs/api.md``:

- a token revoked by another process (``fleetd token revoke``) is refused at the latest
  ``ttl_s`` seconds later; revoking through :func:`revoke_token` with the same cache is
  immediate;
- expiry is exact: a cached entry never outlives the token's ``expires_at``.

``last_used_at`` is written at most once a minute per token, and only on a cache miss.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import asyncpg
import structlog

from dispatcher.auth.principal import Principal
from dispatcher.auth.roles import Role
from dispatcher.storage.db import Conn

log = structlog.get_logger(__name__)

SECRET_PREFIX = "fltd_"
#: Longest secret we bother hashing; anything longer is refused unread.
MAX_SECRET_LENGTH = 256
#: ``last_used_at`` is refreshed when older than this.
TOUCH_INTERVAL = timedelta(seconds=60)


class TokenError(ValueError):
    """A token cannot be created as asked (e.g. a non-admin token for every facility)."""


class DenyReason(StrEnum):
    """Why a presented secret was refused (audited; the client only sees "invalid token")."""

    MISSING = "missing_token"
    MALFORMED = "malformed_token"
    UNKNOWN = "unknown_token"
    EXPIRED = "expired_token"
    REVOKED = "revoked_token"


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Outcome of looking a secret up: a principal, or the reason it was refused.

    ``token_id`` is set whenever the token exists (also when expired or revoked), so a
    refusal can be audited against it.
    """

    principal: Principal | None
    reason: DenyReason | None
    token_id: uuid.UUID | None = None
    #: Wall-clock expiry of the token, used to bound cache lifetime.
    expires_at: datetime | None = None


def generate_secret() -> str:
    """A new random token secret (``fltd_`` + 32 random bytes, url-safe base64)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_token(secret: str) -> bytes:
    """SHA-256 of the secret, the only form stored (32 bytes)."""
    return hashlib.sha256(secret.encode("utf-8")).digest()


def looks_like_secret(secret: str) -> bool:
    """Cheap shape check done before any hashing or lookup."""
    return secret.startswith(SECRET_PREFIX) and 10 < len(secret) <= MAX_SECRET_LENGTH


class TokenCache:
    """Short-lived in-process cache of authentication results, keyed by the token hash.

    Negative results (unknown, expired, revoked) are cached too, so a client hammering the
    API with a bad token costs one query per ``ttl_s``. The cache is a bounded LRU: when
    full, the least recently used entry goes, so a flood of bogus tokens evicts only other
    bogus tokens and the operators' entries (read on every request) stay.
    """

    def __init__(
        self,
        ttl_s: float = 5.0,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[float, AuthResult]] = OrderedDict()
        #: Look-ups in progress: a request for the same token waits for that one.
        self._loading: dict[bytes, asyncio.Future[AuthResult | None]] = {}
        #: Database look-ups made (one per token per ``ttl_s`` when it is busy).
        self.loads = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every cached result (a reload: revocations take effect at once)."""
        self._entries.clear()

    async def load(
        self, token_hash: bytes, fetch: Callable[[], Awaitable[AuthResult]]
    ) -> AuthResult:
        """The result of ``fetch()`` for ``token_hash``, cached; concurrent misses of one
        token make one look-up, not one each. (When an entry expires under load, every
        request arriving before its look-up returned used to query Postgres, each holding
        a pool connection: a burst every ``ttl_s`` that queued the other requests.)"""
        pending = self._loading.get(token_hash)
        if pending is not None:
            shared = await asyncio.shield(pending)
            if shared is not None:
                return shared
            # The first look-up failed or was cancelled: this request makes its own.
        waiter: asyncio.Future[AuthResult | None] = asyncio.get_running_loop().create_future()
        self._loading[token_hash] = waiter
        result: AuthResult | None = None
        try:
            self.loads += 1
            result = await fetch()
            self.put(token_hash, result)
            return result
        finally:
            if self._loading.get(token_hash) is waiter:
                del self._loading[token_hash]
            waiter.set_result(result)

    def get(self, token_hash: bytes) -> AuthResult | None:
        """The cached result for ``token_hash``, or None when absent or stale."""
        hit = self._entries.get(token_hash)
        if hit is None:
            return None
        deadline, result = hit
        if self._clock() >= deadline:
            del self._entries[token_hash]
            return None
        expires_at = result.expires_at
        if (
            result.principal is not None
            and expires_at is not None
            and expires_at <= datetime.now(UTC)
        ):
            # The token expired while cached: look it up again (it will say "expired").
            del self._entries[token_hash]
            return None
        self._entries.move_to_end(token_hash)
        return result

    def put(self, token_hash: bytes, result: AuthResult) -> None:
        """Remember ``result`` for ``ttl_s`` seconds."""
        if self.ttl_s <= 0:
            return
        self._entries[token_hash] = (self._clock() + self.ttl_s, result)
        self._entries.move_to_end(token_hash)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def invalidate(self, token_id: uuid.UUID | None = None) -> None:
        """Forget one token's entries (all entries when ``token_id`` is None)."""
        if token_id is None:
            self._entries.clear()
            return
        stale = [k for k, (_, r) in self._entries.items() if r.token_id == token_id]
        for key in stale:
            del self._entries[key]


class KnownTokens:
    """Hashes of secrets that authenticated recently: a hint for load shedding only.

    The API gives requests carrying such a token a lane of their own, so a flood of
    anonymous or bogus requests cannot take the slots an operator's e-stop needs. Never
    used to authenticate (every request is still looked up); bounded LRU, entries
    forgotten after ``max_age_s`` or when the token is refused.
    """

    def __init__(
        self,
        *,
        max_entries: int = 4096,
        max_age_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_age_s = max_age_s
        self._clock = clock
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def remember(self, token_hash: bytes) -> None:
        """``token_hash`` just authenticated."""
        self._seen[token_hash] = self._clock() + self.max_age_s
        self._seen.move_to_end(token_hash)
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)

    def forget(self, token_hash: bytes) -> None:
        self._seen.pop(token_hash, None)

    def knows(self, token_hash: bytes) -> bool:
        """Whether ``token_hash`` authenticated within ``max_age_s``."""
        until = self._seen.get(token_hash)
        if until is None:
            return False
        if self._clock() >= until:
            del self._seen[token_hash]
            return False
        return True


async def create_token(
    pool: asyncpg.Pool | Conn,
    *,
    role: Role,
    facility_id: uuid.UUID | None,
    name: str,
    expires_at: datetime | None,
    user_id: uuid.UUID | None = None,
) -> tuple[uuid.UUID, str]:
    """Create a token and return ``(token_id, secret)``; the secret is not stored anywhere.

    Raises :class:`TokenError` for an unscoped non-admin token, an expiry in the past or a
    naive ``expires_at``; ``asyncpg.ForeignKeyViolationError`` for an unknown facility or user.
    """
    role = Role(role)
    if facility_id is None and role is not Role.ADMIN:
        raise TokenError(
            f"a {role} token must be scoped to one facility; only admin tokens may be unscoped"
        )
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise TokenError("expires_at must be timezone-aware")
        if expires_at <= datetime.now(UTC):
            raise TokenError(f"expires_at {expires_at.isoformat()} is in the past")
    secret = generate_secret()
    token_id: uuid.UUID = await pool.fetchval(
        """
        INSERT INTO api_tokens (name, token_hash, role, facility_id, user_id, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6)
        RETURNING id
        """,
        name,
        hash_token(secret),
        role.value,
        facility_id,
        user_id,
        expires_at,
    )
    log.info(
        "auth.token_created",
        token_id=str(token_id),
        role=role.value,
        facility_id=str(facility_id) if facility_id else None,
        expires_at=expires_at.isoformat() if expires_at else None,
    )
    return token_id, secret


async def revoke_token(
    pool: asyncpg.Pool | Conn, token_id: uuid.UUID, *, cache: TokenCache | None = None
) -> bool:
    """Revoke a token; True when it was active (False: unknown or already revoked).

    With ``cache``, the revocation takes effect in this process at once; other processes
    notice within their cache TTL.
    """
    row = await pool.fetchval(
        "UPDATE api_tokens SET revoked_at = now() "
        "WHERE id = $1 AND revoked_at IS NULL RETURNING id",
        token_id,
    )
    if cache is not None:
        cache.invalidate(token_id)
    if row is not None:
        log.info("auth.token_revoked", token_id=str(token_id))
    return row is not None


async def lookup(pool: asyncpg.Pool, secret: str, *, cache: TokenCache | None = None) -> AuthResult:
    """Authenticate ``secret``, saying why when it is refused (see :class:`DenyReason`)."""
    if not secret:
        return AuthResult(None, DenyReason.MISSING)
    if not looks_like_secret(secret):
        return AuthResult(None, DenyReason.MALFORMED)
    token_hash = hash_token(secret)
    if cache is not None:
        cached = cache.get(token_hash)
        if cached is not None:
            return cached
        return await cache.load(token_hash, lambda: _lookup_db(pool, token_hash))
    return await _lookup_db(pool, token_hash)


async def authenticate(
    pool: asyncpg.Pool, secret: str, *, cache: TokenCache | None = None
) -> Principal | None:
    """The :class:`Principal` of a valid secret; None for unknown, expired or revoked tokens.

    Pass a :class:`TokenCache` (the API does) to avoid a query per call.
    """
    return (await lookup(pool, secret, cache=cache)).principal


async def _lookup_db(pool: asyncpg.Pool, token_hash: bytes) -> AuthResult:
    row = await pool.fetchrow(
        """
        SELECT id, role, facility_id, user_id, expires_at, revoked_at, last_used_at, now() AS db_now
        FROM api_tokens WHERE token_hash = $1
        """,
        token_hash,
    )
    if row is None:
        return AuthResult(None, DenyReason.UNKNOWN)
    token_id: uuid.UUID = row["id"]
    now: datetime = row["db_now"]
    if row["revoked_at"] is not None:
        return AuthResult(None, DenyReason.REVOKED, token_id)
    expires_at: datetime | None = row["expires_at"]
    if expires_at is not None and expires_at <= now:
        return AuthResult(None, DenyReason.EXPIRED, token_id, expires_at)
    last_used: datetime | None = row["last_used_at"]
    if last_used is None or now - last_used >= TOUCH_INTERVAL:
        await pool.execute(
            "UPDATE api_tokens SET last_used_at = now() WHERE id = $1 "
            "AND (last_used_at IS NULL OR last_used_at < now() - $2::interval)",
            token_id,
            TOUCH_INTERVAL,
        )
    principal = Principal(
        token_id=token_id,
        role=Role(row["role"]),
        facility_id=row["facility_id"],
        user_id=row["user_id"],
    )
    return AuthResult(principal, None, token_id, expires_at)


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as listed by ``fleetd token list`` (never the secret, never the hash)."""

    id: uuid.UUID
    name: str
    role: Role
    facility_id: uuid.UUID | None
    facility_key: str | None
    user_id: uuid.UUID | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def state(self, now: datetime) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


async def list_tokens(pool: asyncpg.Pool) -> list[TokenInfo]:
    """Every token, newest first."""
    rows = await pool.fetch(
        """
        SELECT t.id, t.name, t.role, t.facility_id, f.key AS facility_key, t.user_id,
               t.created_at, t.expires_at, t.revoked_at, t.last_used_at
        FROM api_tokens t LEFT JOIN facilities f ON f.id = t.facility_id
        ORDER BY t.created_at DESC, t.id
        """
    )
    return [
        TokenInfo(
            id=r["id"],
            name=r["name"],
            role=Role(r["role"]),
            facility_id=r["facility_id"],
            facility_key=r["facility_key"],
            user_id=r["user_id"],
            created_at=r["created_at"],
            expires_at=r["expires_at"],
            revoked_at=r["revoked_at"],
            last_used_at=r["last_used_at"],
        )
        for r in rows
    ]
