"""geo.layout is the pure core: it imports nothing from the daemon or its services."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import geo.layout

FORBIDDEN = ("dispatcher", "asyncpg", "redis", "fastapi", "prometheus_client", "asyncio")
MODULES = sorted(Path(geo.layout.__file__).parent.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_edge_imports(path: Path) -> None:
    """No module of geo.layout imports the daemon, a service client or asyncio."""
    tree = ast.parse(path.read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    bad = [n for n in names if n.split(".")[0] in FORBIDDEN]
    assert bad == []
