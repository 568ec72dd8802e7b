"""structlog configuration. Only entry points call :func:`configure_logging`; libraries log."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Literal, TextIO, cast

import structlog


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of the write.

    Binding the stream object at configuration time would keep a replaced (and later
    closed) stream alive in the logger: test runners capture stderr per test, and a
    daemon may have its streams swapped by a supervisor.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_STDERR = cast(TextIO, _CurrentStderr())

#: The level configured last (loggers are not cached, so asking one costs a bind).
_level = logging.INFO


def debug_enabled() -> bool:
    """Whether debug lines are written: a hot path asks before it builds one's fields."""
    return _level <= logging.DEBUG


def configure_logging(level: str = "info", fmt: Literal["json", "console"] = "json") -> None:
    """Route structlog (and stdlib logging) to stderr as JSON lines or a console layout.

    ``vehicle_id`` / ``mission_id`` bound with ``structlog.contextvars`` appear on every line.
    """
    global _level
    lvl = _level = logging.getLevelNamesMapping()[level.upper()]
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=_STDERR),
        # Not cached: the CLI configures a quiet default first and run/sim reconfigure.
        cache_logger_on_first_use=False,
    )
    # Libraries that use stdlib logging (uvicorn, asyncpg, gmqtt) go to stderr too, quieter.
    logging.basicConfig(level=max(lvl, logging.WARNING), stream=_STDERR, format="%(message)s")


@contextlib.contextmanager
def log_context(**values: object) -> Iterator[None]:
    """Add ``values`` to every log line of the current task until the block ends.

    What ``structlog.contextvars.bound_contextvars`` does, at about half its cost: that one
    reads every bound variable first to restore them after, this one resets by token. It
    runs on every ``GET /v1/missions/{id}``.
    """
    tokens = structlog.contextvars.bind_contextvars(**values)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
