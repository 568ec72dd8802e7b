"""The planner is pure: it imports nothing that does I/O or belongs to the daemon's edges."""

from __future__ import annotations

import ast
from pathlib import Path

import dispatcher.planner

FORBIDDEN = (
    "asyncio",
    "asyncpg",
    "redis",
    "gmqtt",
    "aiomqtt",
    "paho",
    "fastapi",
    "uvicorn",
    "httpx",
    "prometheus_client",
    "socket",
    "subprocess",
    "dispatcher.config",
    "dispatcher.api",
    "dispatcher.storage",
    "dispatcher.links",
    "dispatcher.audit",
    "dispatcher.auth",
    "dispatcher.daemon",
    "dispatcher.services",
)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


class TestPurity:
    def test_no_io_or_edge_imports(self) -> None:
        """No module of dispatcher/planner imports an I/O library or a daemon edge."""
        package = Path(dispatcher.planner.__file__).parent
        bad = {
            (path.name, name)
            for path in package.glob("*.py")
            for name in _imports(path)
            if name.startswith(FORBIDDEN)
        }
        assert not bad
