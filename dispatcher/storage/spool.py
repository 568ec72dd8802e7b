"""The local spool: rows for PostgreSQL kept on local disk while the database is away.

An append-only file of JSON lines, one row each, every append ``fsync``'d before it
returns, so a row the daemon said it kept survives ``kill -9`` and a power cut. Each row
has an id (a UUID chosen when it is spooled): the flusher (:mod:`dispatcher.ops.durable`)
writes the id into ``spool_applied`` in the same transaction as the row itself, so a row
flushed twice (the daemon killed between the commit and the truncation of the file) is
stored once.

Bounded by ``max_bytes``: an append that does not fit raises :class:`SpoolFull` and the
caller decides (new missions are refused with 503; a vehicle-safety command goes out all
the same and its audit row is logged instead).

The file is read back whole at start (a torn last line, from a crash in the middle of a
write, is dropped and logged: its append never returned, so nobody was told it was kept).
After a flush the rows written are removed by rewriting the rest to a temporary file,
``fsync``, ``rename`` (atomic), ``fsync`` of the directory.

File I/O runs in a worker thread (``asyncio.to_thread``), one operation at a time, in order.

Active/standby (:mod:`dispatcher.leadership`): spooled mission events are flushed without
the fencing-token check live writes of the dispatch engine carry. They were decided while
this daemon led their facility (nothing is spooled for a facility it does not lead, and it
steps down before its lease could expire), and are written as decided even if another
daemon leads the facility by the time PostgreSQL is back; the lifecycle check still
refuses an event that no longer fits the mission. A new leader waits for its own spool to
be flushed before it loads a facility (``leadership.spool_wait_s``).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from dispatcher.metrics import SPOOL_BYTES, SPOOL_CAPACITY_BYTES, SPOOL_ROWS, SPOOLED

log = structlog.get_logger(__name__)


class SpoolFull(Exception):
    """The spool has no room for the row (``spool.max_bytes``)."""

    def __init__(self, size: int, max_bytes: int) -> None:
        self.size = size
        self.max_bytes = max_bytes
        super().__init__(f"the local spool is full ({size} of {max_bytes} bytes)")


@dataclass(frozen=True, slots=True)
class SpooledRow:
    """One row waiting for PostgreSQL."""

    id: uuid.UUID
    kind: str
    at: str  # when it was spooled, UTC ISO 8601
    body: dict[str, Any]

    def line(self) -> bytes:
        data = {"id": str(self.id), "kind": self.kind, "at": self.at, "body": self.body}
        return json.dumps(data, separators=(",", ":"), sort_keys=True).encode() + b"\n"

    @classmethod
    def parse(cls, line: bytes) -> SpooledRow:
        data = json.loads(line)
        return cls(uuid.UUID(data["id"]), str(data["kind"]), str(data["at"]), dict(data["body"]))


class Spool:
    """One spool file; :meth:`load` it before use."""

    def __init__(self, path: str | Path, *, max_bytes: int) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._rows: list[tuple[SpooledRow, int]] = []  # row, its size in bytes
        self._size = 0
        self._lock = asyncio.Lock()
        SPOOL_CAPACITY_BYTES.set(max_bytes)

    # State ------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Bytes held."""
        return self._size

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def empty(self) -> bool:
        return not self._rows

    def has_room(self, nbytes: int = 1024) -> bool:
        """Whether a row of about ``nbytes`` would still fit."""
        return self._size + nbytes <= self.max_bytes

    def pending(self) -> list[SpooledRow]:
        """The rows held, oldest first."""
        return [row for row, _ in self._rows]

    def _publish(self) -> None:
        SPOOL_BYTES.set(self._size)
        SPOOL_ROWS.set(len(self._rows))

    # Start --------------------------------------------------------------------------------

    async def load(self) -> int:
        """Create the directory, read what an earlier run left; the rows found."""
        rows, torn = await asyncio.to_thread(self._read)
        self._rows = [(row, len(row.line())) for row in rows]
        self._size = sum(n for _, n in self._rows)
        if torn:
            log.warning("spool.torn_line_dropped", path=str(self.path), bytes=torn)
            await asyncio.to_thread(self._rewrite, [r for r, _ in self._rows])
        if rows:
            log.warning("spool.loaded", path=str(self.path), rows=len(rows), bytes=self._size)
        self._publish()
        return len(rows)

    def _read(self) -> tuple[list[SpooledRow], int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            return [], 0
        rows: list[SpooledRow] = []
        torn = 0
        data = self.path.read_bytes()
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                torn += len(line)  # the append never finished
                continue
            try:
                rows.append(SpooledRow.parse(line))
            except (ValueError, KeyError, TypeError):
                torn += len(line)
        return rows, torn

    # Append -------------------------------------------------------------------------------

    async def append(self, kind: str, body: dict[str, Any]) -> SpooledRow:
        """Keep one row on disk (fsync'd when this returns); :class:`SpoolFull` if no room."""
        row = SpooledRow(uuid.uuid4(), kind, datetime.now(UTC).isoformat(), body)
        line = row.line()
        async with self._lock:
            if self._size + len(line) > self.max_bytes:
                raise SpoolFull(self._size, self.max_bytes)
            await asyncio.to_thread(self._append, line)
            self._rows.append((row, len(line)))
            self._size += len(line)
        SPOOLED.labels(kind).inc()
        self._publish()
        log.warning("spool.row_kept", kind=kind, spool_id=str(row.id), rows=len(self._rows))
        return row

    def _append(self, line: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    # Flushed ------------------------------------------------------------------------------

    async def remove_first(self, count: int) -> None:
        """Forget the ``count`` oldest rows (written to PostgreSQL)."""
        if count <= 0:
            return
        async with self._lock:
            rest = self._rows[count:]
            await asyncio.to_thread(self._rewrite, [r for r, _ in rest])
            self._rows = rest
            self._size = sum(n for _, n in rest)
        self._publish()

    def _rewrite(self, rows: list[SpooledRow]) -> None:
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"".join(r.line() for r in rows))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
