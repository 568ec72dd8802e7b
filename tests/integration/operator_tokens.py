"""An operator token for tests that drive a real daemon through its API."""

from __future__ import annotations

import asyncpg

from dispatcher.auth.roles import Role
from dispatcher.auth.tokens import create_token
from dispatcher.config import Settings


async def operator_token(settings: Settings, name: str = "e2e") -> str:
    """A new operator token of the default facility (the daemon has synced the
    facilities), as its secret."""
    conn = await asyncpg.connect(settings.database.dsn)
    try:
        _, secret = await create_token(
            conn,
            role=Role.OPERATOR,
            facility_id=settings.default_facility.id,
            name=name,
            expires_at=None,
        )
    finally:
        await conn.close()
    return secret
