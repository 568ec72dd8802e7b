"""API token operations: create and revoke, each with its audit row.

Tokens are managed by a local operator (``fleetd token``, :meth:`Caller.operator`) or an
admin token. The audit row (``token.create`` / ``token.revoke`` on resource type
``api_token``) commits with the change; refusals are audited too. The secret of a new
token is returned once and never written anywhere (not in the audit row either).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg

from dispatcher.auth.roles import Role
from dispatcher.auth.tokens import TokenCache, TokenError, create_token, revoke_token
from dispatcher.ops import audit
from dispatcher.ops.caller import Caller


class TokenRefusal(StrEnum):
    """Why a token operation was refused (the audit ``reason``)."""

    #: Not a token as asked (unscoped non-admin token, expiry in the past...).
    INVALID = "invalid"
    UNKNOWN_FACILITY = "unknown_facility"
    #: No active token with that id (unknown or already revoked).
    NOT_ACTIVE = "not_active"
    #: Only local operators and admin tokens manage tokens.
    FORBIDDEN = "forbidden"


@dataclass(frozen=True, slots=True)
class TokenRefused:
    reason: TokenRefusal
    message: str


@dataclass(frozen=True, slots=True)
class TokenCreated:
    token_id: uuid.UUID
    #: Shown to the operator once; kept out of reprs and logs.
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class TokenSpec:
    """A token to create."""

    role: Role
    facility_id: uuid.UUID | None
    name: str
    expires_at: datetime | None

    def details(self) -> dict[str, Any]:
        return {
            "role": self.role.value,
            "facility_id": self.facility_id,
            "name": self.name,
            "expires_at": self.expires_at,
        }


class TokenOps:
    """Token changes over the ``api_tokens`` table."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, caller: Caller, spec: TokenSpec) -> TokenCreated | TokenRefused:
        """Create a token; its secret is in the result only."""
        if not _may_manage(caller):
            refused = TokenRefused(TokenRefusal.FORBIDDEN, "only an admin may create tokens")
            return await self._refuse(caller, "token.create", None, refused, spec.details())
        try:
            async with audit.transaction(self._pool) as conn:
                token_id, secret = await create_token(
                    conn,
                    role=spec.role,
                    facility_id=spec.facility_id,
                    name=spec.name,
                    expires_at=spec.expires_at,
                )
                if caller.audited:
                    row = audit.entry(
                        caller,
                        action="token.create",
                        resource_type="api_token",
                        resource_id=str(token_id),
                        success=True,
                        facility_id=spec.facility_id,
                        details={"new": spec.details()},
                    )
                    await audit.append(conn, row)
        except TokenError as exc:
            refused = TokenRefused(TokenRefusal.INVALID, str(exc))
            return await self._refuse(caller, "token.create", None, refused, spec.details())
        except asyncpg.ForeignKeyViolationError:
            message = f"unknown facility {spec.facility_id}"
            refused = TokenRefused(TokenRefusal.UNKNOWN_FACILITY, message)
            return await self._refuse(caller, "token.create", None, refused, spec.details())
        return TokenCreated(token_id, secret)

    async def revoke(
        self, caller: Caller, token_id: uuid.UUID, *, cache: TokenCache | None = None
    ) -> uuid.UUID | TokenRefused:
        """Revoke an active token (at once in this process with ``cache``)."""
        if not _may_manage(caller):
            refused = TokenRefused(TokenRefusal.FORBIDDEN, "only an admin may revoke tokens")
            return await self._refuse(caller, "token.revoke", token_id, refused)
        async with audit.transaction(self._pool) as conn:
            revoked = await revoke_token(conn, token_id, cache=cache)
            if revoked and caller.audited:
                row = audit.entry(
                    caller,
                    action="token.revoke",
                    resource_type="api_token",
                    resource_id=str(token_id),
                    success=True,
                )
                await audit.append(conn, row)
        if not revoked:
            message = f"no active token {token_id} (unknown or already revoked)"
            refused = TokenRefused(TokenRefusal.NOT_ACTIVE, message)
            return await self._refuse(caller, "token.revoke", token_id, refused)
        return token_id

    async def _refuse(
        self,
        caller: Caller,
        action: str,
        token_id: uuid.UUID | None,
        refused: TokenRefused,
        details: dict[str, Any] | None = None,
    ) -> TokenRefused:
        if caller.audited:
            row = audit.entry(
                caller,
                action=action,
                resource_type="api_token",
                resource_id=str(token_id) if token_id is not None else None,
                success=False,
                reason=refused.reason.value,
                details={**(details or {}), "message": refused.message},
            )
            await audit.record(self._pool, row)
        return refused


def _may_manage(caller: Caller) -> bool:
    return caller.principal is None or caller.principal.role is Role.ADMIN
