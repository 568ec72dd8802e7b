"""Errors the storage layer raises, translated from asyncpg/OS errors at this boundary.

Callers catch these rather than asyncpg's own classes, so the daemon and the CLI can tell
"Postgres is away" (retry, or exit 1 with one line) from "the schema is wrong" (refuse).
Data travels as attributes; the message is for people.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

#: Query parameters libpq (and asyncpg) read a secret from: ``?password=`` and the
#: passphrase of a client key.
_SECRET_PARAMS = frozenset({"password", "sslpassword"})


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ``***``, fit for logs and error messages.

    Both places a DSN can carry one are covered: the userinfo and the query string.
    """
    try:
        parts = urlsplit(dsn)
        netloc = parts.netloc
        if parts.password is not None:
            host = parts.hostname or ""
            if ":" in host:  # IPv6 literal
                host = f"[{host}]"
            port = f":{parts.port}" if parts.port is not None else ""
            netloc = f"{parts.username or ''}:***@{host}{port}"
    except ValueError:
        return "<unparseable dsn>"
    query = "&".join(_redact_param(p) for p in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _redact_param(param: str) -> str:
    name, sep, _ = param.partition("=")
    if sep and unquote(name).lower() in _SECRET_PARAMS:
        return f"{name}=***"
    return param


class StorageError(Exception):
    """Base class of every error raised by :mod:`dispatcher.storage`."""


class StorageUnavailable(StorageError):
    """PostgreSQL cannot be reached (refused, timed out, database missing, auth failed).

    ``dsn`` is redacted (no password); ``reason`` is the underlying error in one line.
    """

    def __init__(self, dsn: str, reason: str) -> None:
        self.dsn = redact_dsn(dsn)
        self.reason = reason
        super().__init__(f"PostgreSQL unavailable at {self.dsn}: {reason}")


class MigrationError(StorageError):
    """The schema cannot be brought up to date."""


class MigrationChecksumMismatch(MigrationError):
    """An already-applied migration file was edited afterwards.

    Applied migrations are history: change the schema with a new file instead.
    """

    def __init__(self, version: str, name: str, recorded: str, current: str) -> None:
        self.version = version
        self.name = name
        self.recorded = recorded
        self.current = current
        super().__init__(
            f"migration {version}_{name} was changed after it was applied "
            f"(recorded checksum {recorded[:12]}, file now {current[:12]}); "
            "add a new migration instead of editing an applied one"
        )


class MigrationFailed(MigrationError):
    """One migration's SQL failed; its transaction was rolled back."""

    def __init__(self, version: str, name: str, reason: str) -> None:
        self.version = version
        self.name = name
        self.reason = reason
        super().__init__(f"migration {version}_{name} failed: {reason}")
