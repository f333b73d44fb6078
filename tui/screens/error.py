"""A modal that shows one error sentence; the app keeps running underneath."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static
from textual.worker import Worker, WorkerState


class ErrorScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("enter", "dismiss", "Close", show=False),
    ]

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self.title_text = title
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(id="error-box") as box:
            box.border_title = self.title_text
            box.border_subtitle = "enter / escape to close"
            yield Static(self.message, id="error-message")


class ShowsWorkerErrors:
    """For a screen with thread workers: a worker that fails opens the error modal; the app stays up."""

    WORKER_ERROR_TITLE = "Error"

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.app.show_error(self.WORKER_ERROR_TITLE, f"{type(error).__name__}: {error}")
