"""What PostgreSQL can store as text: no NUL, no lone surrogate.

PostgreSQL ``text`` (and ``jsonb``) refuses the NUL character, and UTF-8 has no encoding
for a lone surrogate (JSON's ``"\\ud800"``, or a non-UTF-8 byte of a command line decoded
with ``surrogateescape``). Inputs are checked with these at every boundary (the API's
:mod:`dispatcher.api.text_guard`, the CLI's argument check) so such text is refused as
invalid input naming the field, never a 500 from the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
#: The message of a refused field.
UNSTORABLE_MESSAGE = "contains a character that cannot be stored (NUL or a lone surrogate)"


def unstorable(text: str) -> bool:
    """Whether ``text`` holds a NUL or a lone surrogate (nothing PostgreSQL can store)."""
    return _UNSTORABLE.search(text) is not None


def unstorable_fields(value: object, where: str) -> Iterator[str]:
    """The paths (``body.pickup.place``, ``body.tags[2]``) of unstorable strings in a JSON
    value; an object key that is unstorable names its object."""
    if isinstance(value, str):
        if unstorable(value):
            yield where
    elif isinstance(value, dict):
        for key, item in value.items():
            if unstorable(str(key)):
                yield where
            yield from unstorable_fields(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from unstorable_fields(item, f"{where}[{index}]")
