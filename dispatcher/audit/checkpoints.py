"""Keyed checkpoints of the audit chain's head, written outside the database.

The hash chain shows a row changed or removed *inside* the chain, but whoever controls the
database can cut the newest rows off, or rewrite a row and re-compute every hash after
it, and the chain verifies again. A copy of the head kept where that person cannot write
detects both: the row at the checkpoint's ``seq`` must still exist with the same hash.

:class:`AuditCheckpointer` (a daemon task) reads the head every
``audit.checkpoint_interval_s`` and, when the chain grew, logs ``audit.checkpoint`` (the
journal) and appends a JSON line to ``audit.checkpoint_file``. With
``audit.checkpoint_key_file`` each checkpoint carries ``mac = HMAC-SHA256(key, ...)``, so
a file edited to match a rewritten database is refused by ``fleetd audit verify``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import structlog

from dispatcher.config import AuditSettings

log = structlog.get_logger(__name__)

_DOMAIN = "fleetd-audit-checkpoint:v1"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The chain head at one moment: row ``seq`` had ``hash_hex``."""

    at: datetime
    instance: str
    seq: int
    hash_hex: str
    mac: str | None = None

    def message(self) -> bytes:
        """What the MAC covers (every field, so none can be swapped)."""
        at = self.at.isoformat(timespec="microseconds")
        return f"{_DOMAIN}|{self.instance}|{self.seq}|{self.hash_hex}|{at}".encode()

    def signed(self, key: bytes) -> Checkpoint:
        mac = hmac.new(key, self.message(), hashlib.sha256).hexdigest()
        return Checkpoint(self.at, self.instance, self.seq, self.hash_hex, mac)

    def mac_valid(self, key: bytes) -> bool:
        if self.mac is None:
            return False
        expected = hmac.new(key, self.message(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.mac)

    def to_line(self) -> str:
        return json.dumps(
            {
                "at": self.at.isoformat(timespec="microseconds"),
                "instance": self.instance,
                "seq": self.seq,
                "hash": self.hash_hex,
                "mac": self.mac,
            },
            separators=(",", ":"),
        )


class CheckpointFileError(ValueError):
    """A line of a checkpoint file cannot be read; ``line`` is its number (1-based)."""

    def __init__(self, line: int, reason: str) -> None:
        self.line = line
        super().__init__(f"checkpoint file line {line}: {reason}")


def parse_checkpoints(lines: Iterable[str]) -> list[Checkpoint]:
    """Checkpoints from JSON lines (blank lines skipped); raises CheckpointFileError."""
    out: list[Checkpoint] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            at = datetime.fromisoformat(doc["at"])
            seq, hash_hex, mac = doc["seq"], doc["hash"], doc.get("mac")
            if not isinstance(seq, int) or seq < 1 or not isinstance(hash_hex, str):
                raise ValueError("seq must be a positive integer and hash a string")
            out.append(Checkpoint(at, str(doc["instance"]), seq, hash_hex, mac))
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointFileError(number, str(exc)) from exc
    return out


def read_key(path: Path | None) -> bytes | None:
    """The HMAC key from ``audit.checkpoint_key_file`` (surrounding whitespace dropped)."""
    if path is None:
        return None
    key = path.read_bytes().strip()
    if not key:
        raise ValueError(f"{path} is empty")
    return key


def append_line(path: Path, line: str) -> None:
    """Append one line and fsync it (O_APPEND: concurrent writers do not interleave)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


_HEAD_SQL = "SELECT seq, hash FROM audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1"


async def take_checkpoint(
    pool: asyncpg.Pool, instance: str, key: bytes | None
) -> Checkpoint | None:
    """The current head as a (signed, with ``key``) checkpoint; None for an empty chain."""
    row = await pool.fetchrow(_HEAD_SQL)
    if row is None:
        return None
    point = Checkpoint(datetime.now(UTC), instance, row["seq"], bytes(row["hash"]).hex())
    return point.signed(key) if key is not None else point


class AuditCheckpointer:
    """Daemon task: a checkpoint each interval in which the chain grew."""

    def __init__(self, pool: asyncpg.Pool, settings: AuditSettings, instance: str) -> None:
        self._pool = pool
        self._settings = settings
        self._instance = instance
        self._last_seq: int | None = None

    async def run(self) -> None:
        """Until cancelled. A failed round is logged and retried next interval."""
        key = await asyncio.to_thread(read_key, self._settings.checkpoint_key_file)
        if key is None:
            log.warning("audit.checkpoints_unkeyed", hint="set audit.checkpoint_key_file")
        while True:
            try:
                await self.checkpoint(key)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("audit.checkpoint_failed", error=str(exc))
            await asyncio.sleep(self._settings.checkpoint_interval_s)

    async def checkpoint(self, key: bytes | None) -> Checkpoint | None:
        """Write one checkpoint if the chain grew since the last; return it."""
        point = await take_checkpoint(self._pool, self._instance, key)
        if point is None or point.seq == self._last_seq:
            return None
        log.info("audit.checkpoint", seq=point.seq, hash=point.hash_hex, mac=point.mac)
        path = self._settings.checkpoint_file
        if path is not None:
            await asyncio.to_thread(append_line, path, point.to_line())
        self._last_seq = point.seq
        return point
