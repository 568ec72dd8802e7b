"""The status view's screens and small widgets: confirmation, key help, the filter bar."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

KEYS_HELP = """\
[b]fleetd status: keys[/b]

  ?          this help                 q          quit
  tab        next panel                shift+tab  previous panel
  ↑ ↓        move in a table           enter      details of the row
  /          filter vehicles           esc        clear the filter / close
  s          sort by next column       S          reverse the sort
  m          show / hide the map       (mouse: click a row, a header sorts)

  Filter: words match name, kind, status, zone, mission;
          kind:robot  status:idle  zone:ward  narrow by field.

  Actions (only those your token's role allows; each asks first):
  p pause    r resume    c send to charge        (vehicle selected)
  x cancel mission       d resolve a mission waiting for a decision
  a acknowledge the selected alert

  STALE in the top bar: the daemon is lost. The tables show the data as of the
  time given, not live, until the view has reconnected by itself.
"""


class HelpScreen(ModalScreen[None]):
    """The key list (``?``)."""

    BINDINGS = [
        Binding("escape,q,question_mark", "dismiss_help", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Static(KEYS_HELP, id="help-text")
            yield Button("Close", id="help-close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_dismiss_help(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """ "Really do this?" with Yes (``y``) and No (``n``, ``esc``)."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(self.question, id="confirm-text")
            with Horizontal(id="confirm-buttons"):
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ChoiceScreen(ModalScreen[str | None]):
    """Pick one of a few choices (resolving a held mission): a button each, esc cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, choices: list[str]) -> None:
        super().__init__()
        self.question = question
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(self.question, id="confirm-text")
            with Horizontal(id="confirm-buttons"):
                for choice in self.choices:
                    yield Button(choice, id=f"choice-{choice}")
                yield Button("Cancel", id="cancel", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        bid = event.button.id or ""
        self.dismiss(bid.removeprefix("choice-") if bid.startswith("choice-") else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
