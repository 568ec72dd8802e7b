"""Text PostgreSQL cannot store, refused at the door with a 422 naming the field.

PostgreSQL ``text`` (and ``jsonb``) refuses the NUL character, and UTF-8 has no encoding
for a lone surrogate (``"\\ud800"`` is valid JSON but no character): either reached the
database as a 500. :func:`refuse_unstorable_text` runs before every ``/v1`` route's own
validation and checks the JSON body, the query string and the path parameters.

The body check costs one scan of the raw bytes for a ``\\u0000`` or ``\\udXXX`` escape (a raw
NUL or control byte is not JSON and is refused as malformed anyway); only a body that has
one is parsed again to name the field.
"""

from __future__ import annotations

import contextlib
import json
import re

from fastapi import Request

from dispatcher.api.problems import VALIDATION, ProblemError
from dispatcher.storable_text import UNSTORABLE_MESSAGE, unstorable, unstorable_fields

#: JSON escapes that may decode to something unstorable (surrogates may also be a valid pair).
_SUSPECT = re.compile(rb"\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


async def refuse_unstorable_text(request: Request) -> None:
    """Dependency: 422 when any text input holds a character PostgreSQL cannot store."""
    fields = [f"path.{k}" for k, v in request.path_params.items() if unstorable(str(v))]
    fields += [f"query.{k}" for k, v in request.query_params.multi_items() if unstorable(k + v)]
    if request.method in ("POST", "PUT", "PATCH"):
        body = await request.body()
        if _SUSPECT.search(body):
            # Not JSON: the route's own parsing answers it.
            with contextlib.suppress(ValueError):
                fields += unstorable_fields(json.loads(body), "body")
    if fields:
        unique = list(dict.fromkeys(fields))
        raise ProblemError(
            422,
            "Invalid request",
            f"{len(unique)} invalid value(s): {', '.join(unique)}.",
            type=VALIDATION,
            errors=[(f, UNSTORABLE_MESSAGE) for f in unique],
        )
