"""The lesson box: the current guided lesson at the bottom of whatever screen it happens on."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class LessonBox(Static):
    """ "lesson 3 of 11 · title", the text, the task and the live observation."""

    DEFAULT_CSS = """
    LessonBox {
        height: auto;
        max-height: 7;
        background: $success 12%;
        padding: 0 1;
    }
    """
    KEYS = "( ) previous/next · G closes"

    def __init__(self) -> None:
        super().__init__(id="lesson")
        self.shown: tuple = ()

    def show(self, number: int, total: int, title: str, text: str, task: str, observation: str) -> None:
        """Repaint only when something changed (the observation is refreshed a few times a second)."""
        if (number, title, task, observation) == self.shown:
            return
        self.shown = (number, title, task, observation)
        body = Text()
        body.append(f"lesson {number} of {total} · {title}", style="bold")
        body.append(f"  {self.KEYS}", style="dim")
        body.append("\n" + text)
        body.append("\nTry: ", style="bold")
        body.append(task)
        body.append("\nNow: ", style="bold green")
        body.append(observation)
        self.update(body)
