"""The small HTTP client the CLI commands share to talk to a running daemon.

- Base URL: ``settings.api.base_url`` (defaults reach a daemon on this machine).
- Token: ``$FLEETD_TOKEN``, else ``settings.api.token``.
- Errors: problem documents become one readable line (:class:`ApiError`); a daemon that
  does not answer becomes :class:`DaemonUnreachable`. :func:`run_api_command` prints either
  as ``fleetd: ...`` on stderr and returns exit status 1.

Usage in a subcommand::

    def _run(args):
        settings = settings_from_args(args)
        def body(client: ApiClient) -> int:
            mission = client.post("/v1/missions", json={...})
            print(mission["id"])
            return 0
        return run_api_command(settings, body)
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any

import httpx
import structlog

from dispatcher.config import Settings

TOKEN_ENV_VAR = "FLEETD_TOKEN"
DEFAULT_TIMEOUT_S = 10.0

TOKEN_HINT = (
    f"set {TOKEN_ENV_VAR} (or api.token in the configuration) to a token from "
    "`fleetd token create --role operator`"
)


class ApiError(Exception):
    """The daemon answered with an error. ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, status: int, message: str, problem: Mapping[str, Any] | None = None) -> None:
        self.status = status
        self.message = message
        self.problem = dict(problem) if problem else None
        super().__init__(message)


class DaemonUnreachable(ApiError):
    """Nothing answers at the base URL (connection refused, timeout, DNS)."""

    def __init__(self, base_url: str, why: str) -> None:
        self.base_url = base_url
        self.why = why
        super().__init__(0, f"cannot reach the daemon at {base_url} (is fleetd run going?)")


def quiet_logging(level: int = logging.WARNING) -> None:
    """Send structlog output to stderr, warnings and up, so stdout carries only results.

    For CLI commands other than ``run`` (whose output people and scripts parse). Loggers
    are not cached, so a later ``structlog.configure`` (tests) takes effect everywhere.
    """
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def resolve_token(settings: Settings) -> str | None:
    """``$FLEETD_TOKEN`` wins over ``api.token``; empty values count as unset."""
    configured = settings.api.token.get_secret_value() if settings.api.token else None
    return os.environ.get(TOKEN_ENV_VAR) or configured or None


def describe_problem(response: httpx.Response) -> str:
    """One line for an error response: ``404 Not Found: No vehicle ... (body.x: ...)``."""
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        text = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
        return f"{response.status_code} {response.reason_phrase}" + (f": {text}" if text else "")
    title = doc.get("title") or response.reason_phrase
    line = f"{response.status_code} {title}"
    if doc.get("detail"):
        line += f": {doc['detail']}"
    errors = doc.get("errors")
    if isinstance(errors, list) and errors:
        fields = "; ".join(
            f"{e.get('field')}: {e.get('message')}" for e in errors if isinstance(e, dict)
        )
        line += f" ({fields})"
    return line


class ApiClient:
    """Synchronous JSON client for the daemon's API (one connection pool per instance)."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "fleetd-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> ApiClient:
        """A client for the daemon ``settings`` describe, with the resolved token."""
        return cls(settings.api.base_url, resolve_token(settings), **kwargs)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying connections."""
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one request; the decoded JSON body (None for an empty body).

        Raises :class:`DaemonUnreachable` or :class:`ApiError` (status >= 400).
        """
        try:
            response = self._http.request(
                method, path, params=dict(params or {}), json=json, headers=dict(headers or {})
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise DaemonUnreachable(self.base_url, type(exc).__name__) from exc
        except httpx.TimeoutException as exc:
            raise DaemonUnreachable(self.base_url, "no answer in time") from exc
        except httpx.TransportError as exc:
            raise DaemonUnreachable(self.base_url, type(exc).__name__) from exc
        if response.status_code >= 400:
            message = describe_problem(response)
            if response.status_code == 401:
                message += f" — {TOKEN_HINT}"
            problem: Any = None
            with contextlib.suppress(ValueError):
                problem = response.json()
            raise ApiError(
                response.status_code, message, problem if isinstance(problem, dict) else None
            )
        if not response.content:
            return None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        """GET ``path`` with query ``params`` (None values are left out)."""
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, json: Any = None, *, headers: Mapping[str, str] | None = None) -> Any:
        """POST a JSON body."""
        return self.request("POST", path, json=json, headers=headers)

    def iter_pages(
        self, path: str, *, limit: int = 1000, max_pages: int = 10_000, **params: Any
    ) -> Iterator[Any]:
        """Every item of a cursor-paginated list (``{items, next_cursor}``), page by page.

        A plain JSON list answer is accepted too (yielded as is).
        """
        cursor: str | None = None
        for _ in range(max_pages):
            page = self.get(path, limit=limit, cursor=cursor, **params)
            if isinstance(page, list):
                yield from page
                return
            yield from page.get("items", [])
            cursor = page.get("next_cursor")
            if not cursor:
                return


def run_api_command(
    settings: Settings,
    body: Callable[[ApiClient], int],
    *,
    prog: str = "fleetd",
    client: ApiClient | None = None,
) -> int:
    """Run ``body`` with a client; print API errors as one line and return 1 for them."""
    own = client is None
    api = client if client is not None else ApiClient.from_settings(settings)
    try:
        return body(api)
    except ApiError as exc:
        print(f"{prog}: {exc.message}", file=sys.stderr)
        return 1
    finally:
        if own:
            api.close()
