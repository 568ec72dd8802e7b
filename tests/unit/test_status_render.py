"""``fleetd status`` prints what vehicles chose to call themselves: never raw (issue 13 item 10)."""

from __future__ import annotations

from datetime import UTC, datetime

from dispatcher.cli.status import printable, render_table

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _status(name: str) -> dict[str, object]:
    vehicle = {"id": "v1", "name": name, "kind": "robot", "online": True, "status": "idle"}
    return {"vehicles": [vehicle], "missions": [], "as_of": NOW.isoformat()}


def test_escape_sequences_in_a_name_are_shown_not_obeyed() -> None:
    """ESC, BEL and C1 controls come out as visible escapes; no control byte is printed."""
    text = render_table(_status("r1\x1b[2J\x1b]0;owned\x07\x9b31m"), now=NOW)
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text
    assert "r1\\x1b[2J\\x1b]0;owned\\x07\\x9b31m" in text


def test_bidi_overrides_and_newlines_are_escaped() -> None:
    assert printable("a\u202eb\nc") == "a\\u202eb\\x0ac"


def test_long_names_are_cut() -> None:
    assert len(printable("x" * 500)) == 64


def test_plain_text_is_unchanged() -> None:
    assert printable("Wheelchair robot 1 (ward A)") == "Wheelchair robot 1 (ward A)"
