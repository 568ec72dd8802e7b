"""Reading a LIF file: JSON, then the schema, then ids and references, then reachability.

:func:`parse_lif` is pure (text in, :class:`LifDocument` out); :func:`load_lif` adds the
file read. Both raise a :class:`~geo.layout.errors.LayoutError` subclass naming the first
problem, with every further one in its ``also``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from geo.layout.errors import LayoutError, LayoutSyntaxError
from geo.layout.model import LifDocument, content_digest
from geo.layout.parse import parse_document
from geo.layout.reachability import reachability_problems
from geo.layout.references import element_paths, reference_problems
from geo.layout.schema_check import check_schema


def _raise_all(problems: list[LayoutError]) -> None:
    if problems:
        first = problems[0]
        first.also = tuple(problems[1:])
        raise first


def parse_lif(text: str | bytes, source: str = "") -> LifDocument:
    """Validate and build a LIF document from its JSON text."""
    try:
        document: Any = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LayoutSyntaxError(f"not valid JSON: {exc}", source=source) from exc
    check_schema(document, source)
    _raise_all(reference_problems(document, source))
    doc = parse_document(document, source=source, digest=content_digest(text))
    _raise_all(reachability_problems(doc, element_paths(document), source))
    return doc


def load_lif(path: str | Path) -> LifDocument:
    """Read and validate a LIF file."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise LayoutSyntaxError(f"cannot read: {exc.strerror}", source=str(p)) from exc
    return parse_lif(data, source=str(p))
