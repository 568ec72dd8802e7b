"""``fleetd layout check|draw`` and a bad layout at ``fleetd run``: exit codes and messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dispatcher.cli import main
from tests.unit.geo.layout.builders import edge, square, text


@pytest.fixture(autouse=True)
def _no_fleetd_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's FLEETD_* variables must not choose the configuration here."""
    import os

    for name in list(os.environ):
        if name.startswith("FLEETD_"):
            monkeypatch.delenv(name)


def _bad_file(tmp_path: Path) -> Path:
    doc = square()
    doc["layouts"][0]["edges"].append(edge("C", "Z", eid="C-Z"))
    path = tmp_path / "bad.lif.json"
    path.write_text(text(doc))
    return path


class TestCheck:
    def test_good_file(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The shipped campus checks out and its counts are printed."""
        assert main(["layout", "check", "fleetd:hospital-campus.lif.json"]) == 0
        out = capsys.readouterr().out
        assert "layout 'campus-ground' version 1" in out and out.strip().endswith("ok")

    def test_bad_file_exits_2_naming_the_element(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A dangling edge: exit 2, the file, the edge and the reason on stderr."""
        path = _bad_file(tmp_path)
        assert main(["layout", "check", str(path)]) == 2
        err = capsys.readouterr().err
        assert str(path) in err and "edge 'C-Z'" in err and "'Z' is not a node" in err


class TestDraw:
    def test_writes_a_png(self, tmp_path: Path) -> None:
        """The campus draws into a PNG file, with its site and places."""
        out = tmp_path / "campus.png"
        code = main(
            [
                "layout",
                "draw",
                "fleetd:hospital-campus.lif.json",
                "-o",
                str(out),
                "--facility",
                "demo-campus",
            ]
        )
        assert code == 0
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def test_unknown_facility(self, tmp_path: Path) -> None:
        """Labelling with a facility that is not configured is a usage error."""
        code = main(
            [
                "layout",
                "draw",
                "fleetd:hospital-campus.lif.json",
                "-o",
                str(tmp_path / "x.png"),
                "--facility",
                "mars",
            ]
        )
        assert code == 2


class TestRunRefusesBadLayouts:
    def test_exit_2_before_connecting(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """fleetd run with a facility naming a bad LIF file stops at once with status 2."""
        _bad_file(tmp_path)
        config = tmp_path / "fleetd.toml"
        config.write_text(
            '[[facilities]]\nkey = "site"\nname = "Site"\n'
            f"layouts = [{json.dumps('bad.lif.json')}]\n"
        )
        assert main(["-c", str(config), "run"]) == 2
        err = capsys.readouterr().err
        assert "invalid layout" in err and "edge 'C-Z'" in err
