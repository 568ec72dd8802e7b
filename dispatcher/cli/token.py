"""``fleetd token``: create, revoke and list API tokens (directly in Postgres, no daemon).

Creating and revoking are operations of :mod:`dispatcher.ops.tokens` (audited, with the
local user as ``source``). ``token create`` is how the first admin token comes to exist, so
it needs no token itself: it migrates the database and syncs the configured facilities
first, so it works on a fresh machine. The secret is printed once, as the last word of the
output, and never stored.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import re
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg

from dispatcher.auth.roles import ROLE_DESCRIPTIONS, Role
from dispatcher.auth.tokens import list_tokens
from dispatcher.cli.api_client import quiet_logging
from dispatcher.cli.common import settings_from_args
from dispatcher.config import Settings
from dispatcher.ops.caller import Caller
from dispatcher.ops.tokens import TokenCreated, TokenOps, TokenRefused, TokenSpec

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

T = TypeVar("T")


class UsageError(Exception):
    """Bad input discovered after parsing (unknown facility, ...): exit status 2."""


def parse_expires(value: str, *, now: datetime | None = None) -> datetime:
    """``30d`` / ``12h`` / ``45m`` / ``2w`` / ``90s`` from now, or an ISO 8601 instant.

    An ISO time without a zone is taken as UTC. Raises ``ValueError`` for anything else
    and for a time not in the future.
    """
    now = now or datetime.now(UTC)
    match = _DURATION.match(value)
    if match:
        amount = int(match[1])
        if amount <= 0:
            raise ValueError(f"--expires {value!r}: the duration must be positive")
        return now + timedelta(**{_UNITS[match[2]]: amount})
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"--expires {value!r}: expected a duration like 30d, 12h, 45m or an ISO 8601 time"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when <= now:
        raise ValueError(f"--expires {value!r} is not in the future")
    return when


def resolve_expires(
    value: str | None, lifetime_days: int, *, now: datetime | None = None
) -> datetime | None:
    """The expiry of a new token: ``--expires`` if given (``never`` for none), else
    ``api.token_lifetime_days`` from now (0 there: none). Raises ``ValueError`` like
    :func:`parse_expires`.

    A default lifetime, because a token nobody remembers (a laptop, a retired script)
    otherwise stays valid forever.
    """
    now = now or datetime.now(UTC)
    if value is None:
        return now + timedelta(days=lifetime_days) if lifetime_days > 0 else None
    if value.strip().lower() == "never":
        return None
    return parse_expires(value, now=now)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``token create | revoke | list``."""
    parser = subparsers.add_parser(
        "token",
        help="create, revoke and list API tokens",
        description="Manage API tokens directly in the database (no running daemon needed).",
    )
    sub = parser.add_subparsers(dest="token_command", metavar="ACTION", required=True)

    roles = "; ".join(f"{r.value}: {d.rstrip('.')}" for r, d in ROLE_DESCRIPTIONS.items())
    create = sub.add_parser(
        "create",
        help="create a token and print its secret (shown once)",
        description=f"Create an API token. Roles: {roles}",
    )
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument(
        "--facility",
        metavar="KEY_OR_UUID",
        help="facility the token is limited to; 'all' for every facility (admin only). "
        "Default: all for admin, else the configured default facility",
    )
    create.add_argument(
        "--expires",
        metavar="WHEN",
        help="30d, 12h, 45m, 2w, an ISO 8601 time (UTC if no zone), or 'never'; "
        "default: api.token_lifetime_days (90) from now",
    )
    create.add_argument("--name", default="", help="a label for people (who or what uses it)")
    create.set_defaults(func=_create)

    revoke = sub.add_parser("revoke", help="revoke a token (refused from then on)")
    revoke.add_argument("token_id", metavar="TOKEN_ID")
    revoke.set_defaults(func=_revoke)

    lst = sub.add_parser("list", help="list tokens (never their secrets)")
    lst.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    lst.set_defaults(func=_list)


def _with_pool(settings: Settings, work: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    from dispatcher.storage.db import create_pool

    async def main() -> T:
        db = settings.database
        pool = await create_pool(db.dsn, password=db.password, min_size=1, max_size=2)
        try:
            return await work(pool)
        finally:
            await pool.close()

    return asyncio.run(main())


def operator() -> Caller:
    """The person running this command, as the audit log records them."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        user = f"uid{os.getuid()}"
    return Caller.operator(user)


def _fail(message: str, code: int) -> int:
    print(f"fleetd token: {message}", file=sys.stderr)
    return code


async def resolve_facility(
    pool: asyncpg.Pool, settings: Settings, role: Role, value: str | None
) -> tuple[uuid.UUID | None, str]:
    """``(facility_id or None for all, label)`` for ``--facility``; UsageError when unknown."""
    if value is None:
        if role is Role.ADMIN:
            return None, "all"
        value = settings.default_facility.key
    if value.lower() == "all":
        if role is not Role.ADMIN:
            raise UsageError(f"a {role} token must name one facility; only admin may use 'all'")
        return None, "all"
    rows = await pool.fetch("SELECT id, key FROM facilities WHERE deleted_at IS NULL ORDER BY key")
    for row in rows:
        if value in (row["key"], str(row["id"])):
            return row["id"], row["key"]
    known = ", ".join(r["key"] for r in rows) or "none"
    raise UsageError(f"unknown facility {value!r} (known: {known})")


def _create(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    quiet_logging()
    role = Role(args.role)
    try:
        expires_at = resolve_expires(args.expires, settings.api.token_lifetime_days)
    except ValueError as exc:
        return _fail(str(exc), 2)

    from dispatcher.storage.errors import StorageError
    from dispatcher.storage.fleet_store import sync_facilities
    from dispatcher.storage.migrate import apply_migrations

    async def work(pool: asyncpg.Pool) -> tuple[TokenCreated | TokenRefused, str]:
        await sync_facilities(pool, settings.effective_facilities)
        facility_id, label = await resolve_facility(pool, settings, role, args.facility)
        spec = TokenSpec(role=role, facility_id=facility_id, name=args.name, expires_at=expires_at)
        return await TokenOps(pool).create(operator(), spec), label

    try:
        db = settings.database
        if db.migrate_on_start:
            asyncio.run(apply_migrations(db.owner_dsn, password=db.owner_password))
        outcome, label = _with_pool(settings, work)
    except UsageError as exc:
        return _fail(str(exc), 2)
    except StorageError as exc:
        return _fail(str(exc), 1)
    if isinstance(outcome, TokenRefused):
        return _fail(outcome.message, 2)
    token_id, secret = outcome.token_id, outcome.secret
    expires = expires_at.isoformat(timespec="seconds") if expires_at else "never"
    print(f"token id {token_id} role {role.value} facility {label} expires {expires}")
    print("Keep the secret below: it is shown only once (set FLEETD_TOKEN to use it).")
    print(f"token: {secret}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    quiet_logging()
    try:
        token_id = uuid.UUID(args.token_id)
    except ValueError:
        return _fail(f"{args.token_id!r} is not a token id (a UUID, see `fleetd token list`)", 2)
    from dispatcher.storage.errors import StorageError

    try:
        outcome = _with_pool(settings, lambda pool: TokenOps(pool).revoke(operator(), token_id))
    except StorageError as exc:
        return _fail(str(exc), 1)
    except asyncpg.UndefinedTableError:
        return _fail("the database has no tokens yet (run `fleetd migrate`)", 1)
    if isinstance(outcome, TokenRefused):
        return _fail(outcome.message, 1)
    print(f"revoked {token_id} (a running daemon refuses it within a few seconds)")
    return 0


def _fmt(dt: datetime | None) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if dt else "-"


def _list(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    quiet_logging()
    from dispatcher.storage.errors import StorageError

    try:
        tokens = _with_pool(settings, list_tokens)
    except StorageError as exc:
        return _fail(str(exc), 1)
    except asyncpg.UndefinedTableError:
        return _fail("the database has no tokens yet (run `fleetd migrate`)", 1)
    now = datetime.now(UTC)
    if args.json:
        for t in tokens:
            print(
                json.dumps(
                    {
                        "id": str(t.id),
                        "name": t.name,
                        "role": t.role.value,
                        "facility": t.facility_key or "all",
                        "state": t.state(now),
                        "created_at": t.created_at.isoformat(),
                        "expires_at": t.expires_at.isoformat() if t.expires_at else None,
                        "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
                        "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                    }
                )
            )
        return 0
    header = ("ID", "NAME", "ROLE", "FACILITY", "STATE", "CREATED", "EXPIRES", "LAST USED")
    rows = [
        (
            str(t.id),
            t.name or "-",
            t.role.value,
            t.facility_key or "all",
            t.state(now),
            _fmt(t.created_at),
            _fmt(t.expires_at),
            _fmt(t.last_used_at),
        )
        for t in tokens
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0
