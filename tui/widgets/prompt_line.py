"""The main screen's prompt line: shown only while the prompt is edited (i); enter applies, escape cancels."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from tui.widgets.edit_line import EditLine


class PromptLine(Horizontal):
    def compose(self) -> ComposeResult:
        yield Static("prompt ›", id="prompt-label")
        yield EditLine(placeholder="the text to continue (enter applies and resets, escape cancels)", id="prompt")

    def open(self) -> None:
        """Shown, and the keys go to it at once (EditLine.edit)."""
        self.display = True
        self.query_one(EditLine).edit()

    def close(self, prompt: str) -> None:
        """Hidden, holding `prompt` for the next edit."""
        self.query_one(EditLine).value = prompt
        self.display = False
