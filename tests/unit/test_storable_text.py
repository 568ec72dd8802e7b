"""Text PostgreSQL cannot store (fuzz finding): found in JSON values, refused by the CLI."""

from __future__ import annotations

import pytest

from dispatcher.cli import main
from dispatcher.storable_text import unstorable, unstorable_fields


def test_nul_and_lone_surrogates_are_unstorable() -> None:
    assert unstorable("a\x00b")
    assert unstorable("a\ud800b") and unstorable("\udcff")
    assert not unstorable("plain") and not unstorable("\U0001f6d1 stop")


def test_fields_are_named_by_path() -> None:
    value = {"pickup": {"place": "x\x00"}, "tags": ["ok", "\ud800"], "n\x00": 1, "n": 2}
    assert list(unstorable_fields(value, "body")) == ["body.pickup.place", "body.tags[1]", "body"]


@pytest.mark.parametrize("bad", ["ward\x00desk", "ward\udcffdesk"])
def test_cli_refuses_it_with_exit_2_naming_the_argument(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused before anything runs (no database needed): exit 2 naming the option."""
    with pytest.raises(SystemExit) as exit_:
        main(["token", "create", "--role", "admin", "--name", bad])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument name" in err and "cannot be stored" in err
