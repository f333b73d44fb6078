"""The main screen's prompt line: shown only while the prompt is edited (i); enter applies, escape cancels."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Input, Static


class PromptLine(Horizontal):
    def compose(self) -> ComposeResult:
        yield Static("prompt ›", id="prompt-label")
        yield Input(placeholder="the text to continue (enter applies and resets, escape cancels)", id="prompt")

    def open(self) -> None:
        """Shown, and the keys go to it at once (the focus moves now: Widget.focus() would wait)."""
        self.display = True
        self.screen.set_focus(self.query_one(Input))

    def close(self, prompt: str) -> None:
        """Hidden, holding `prompt` for the next edit."""
        self.query_one(Input).value = prompt
        self.display = False
