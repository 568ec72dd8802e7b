"""The braille map: dots, lines, marks, and a layout drawn into a panel."""

from __future__ import annotations

from dispatcher.console.braille import Canvas, draw_map


def test_dots_fill_braille_cells() -> None:
    c = Canvas(2, 1)
    c.dot(0, 0)
    c.dot(1, 3)
    assert c.lines() == [chr(0x2800 | 0x01 | 0x80) + " "]


def test_a_line_and_a_mark() -> None:
    c = Canvas(4, 1)
    c.line(0, 0, 7, 0)
    c.mark(7, 0, "R")
    assert c.lines() == [chr(0x2800 | 0x09) * 3 + "R"]


def test_out_of_range_is_ignored() -> None:
    c = Canvas(1, 1)
    c.dot(-1, 0)
    c.dot(5, 5)
    c.mark(9, 9, "x")
    assert c.lines() == [" "]


def test_a_layout_with_vehicles() -> None:
    nodes = [["a", 52.0, 13.0], ["b", 52.0, 13.01], ["c", 52.01, 13.01]]
    lines = draw_map(
        20, 6, nodes, [[0, 1], [1, 2], [0, 9]], [(52.0, 13.0, "R")], (52.0, 13.0, 52.01, 13.01)
    )
    assert len(lines) == 6 and all(len(line) == 20 for line in lines)
    text = "".join(lines)
    assert "R" in text
    assert any(0x2800 < ord(ch) <= 0x28FF for ch in text)


def test_no_bounds_draws_nothing() -> None:
    assert draw_map(5, 2, [], [], [], None) == [" " * 5] * 2
