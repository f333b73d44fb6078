"""A modal that shows one error sentence; the app keeps running underneath."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from engine.runtime.loading import ModelLoadError
from engine.views.replay import ReplayError
from engine.views.trace import TraceError

ONE_SENTENCE_ERRORS = (ModelLoadError, TraceError, ReplayError)  # their text is already a sentence for the user


def error_sentence(error: BaseException) -> str:
    return str(error) if isinstance(error, ONE_SENTENCE_ERRORS) else f"{type(error).__name__}: {error}"


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
            self.app.push_screen(ErrorScreen(self.WORKER_ERROR_TITLE, f"{type(error).__name__}: {error}"))
