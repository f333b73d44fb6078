"""Frame pacing on the main screen: when what is drawn.

- A key's token is drawn alone (one line of the Generation pane, ~1 ms to compose), and the status
  and the other panes once that frame is written (a full frame takes ~10 ms on a laptop-class CPU):
  the token is on screen sooner. A token chosen before the model reads it in (TokenChosen) is drawn
  the same way, and the engine thread waits for its frame before the forward pass.
- A run's tokens come in batches (tui.controller.RUN_BATCHES_PER_SECOND); each batch is one redraw,
  with the run's status.
- A redraw asked for too soon after the last one waits for the timer (REDRAW_CHECKS_PER_SECOND), so
  the UI thread stays at most half busy and the engine thread keeps its share of the interpreter.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from tui.transcript import Position

REDRAW_CHECKS_PER_SECOND = 30  # a redraw put off (the last one was too recent) waits at most this long


class Drawing(Protocol):
    """What the pacing drives: the main screen."""

    drawable: bool  # False while the app shuts down
    is_current: bool  # on screen now
    app: Any  # tui.app.TfundApp: after_next_frame(callback) calls back once the next frame is written

    def draw_text(self) -> bool:
        """The Generation pane's text alone; True when a row is to be repainted."""

    def redraw(self) -> None:
        """Every pane."""

    def show_progress(self) -> None:
        """The status line."""


class FramePacing:
    """The main screen's frame pacing: whether to draw now, the text alone first, or at the next check."""

    def __init__(self, drawing: Drawing, session) -> None:
        """`session`: tui.session.Session (a run's tokens come in batches; a command it ran may change what is shown)."""
        self.drawing = drawing
        self.session = session
        self.needs_redraw = False
        self.next_redraw_at = 0.0  # perf_counter time before which the timer does not redraw
        self.chosen: Position | None = None  # a key's token drawn before the model read it in (TokenChosen)
        self.text_frame_pending = False  # the text was drawn alone and its frame is not written yet
        self.rest_due = False  # the status and the other panes follow that frame

    def redraw_if_needed(self) -> None:
        """The timer's check (REDRAW_CHECKS_PER_SECOND): a redraw asked for and not done yet."""
        if (self.needs_redraw or self.session.changed) and time.perf_counter() >= self.next_redraw_at:
            began = time.perf_counter()
            self.drawing.redraw()
            finished = time.perf_counter()
            # a slow terminal or machine: wait as long as the redraw took, so the UI thread stays at most
            # half busy and the engine thread keeps its share of the interpreter
            self.next_redraw_at = finished + (finished - began)

    def redraw_soon(self) -> None:
        """A key's answer, or a run's batch of tokens, is drawn at once (unless the last redraw was too recent)."""
        self.needs_redraw = True
        self.redraw_if_needed()

    def redrawn(self) -> None:
        """The screen drew every pane: nothing is owed."""
        self.needs_redraw = self.session.changed = False

    def text_changed(self) -> None:
        """Tokens added or undone. During a run they are drawn with the run's status (each batch is one
        redraw). After a key the text is drawn alone, and the status and the other panes once that frame
        is written."""
        self.chosen = None  # now in the transcript (or its step failed)
        if self.session.engine.running:
            self.redraw_soon()
            return
        self.rest_due = True
        if self.showing():
            self.draw_text_first()
        if not self.text_frame_pending:  # nothing to wait for: drawn already (when chosen), or not on screen
            self.text_frame_written()

    def token_chosen(self, token: Position, shown: threading.Event) -> None:
        """A key's token, drawn before the model reads it in; `shown` is set once its frame is written
        (the engine thread waits for it). Not during a run, time travel, or with the screen hidden."""
        if self.session.engine.running or self.session.selected_token is not None or not self.showing():
            shown.set()
            return
        self.chosen = token
        self.draw_text_first()
        if self.text_frame_pending:
            self.drawing.app.after_next_frame(shown.set)
        else:
            shown.set()

    def command_done(self) -> None:
        if self.chosen is not None:  # its step failed: the token never came
            self.chosen = None
            self.redraw_soon()

    def showing(self) -> bool:
        return self.drawing.drawable and self.drawing.is_current

    def draw_text_first(self) -> None:
        if self.drawing.draw_text():
            self.text_frame_pending = True
            self.drawing.app.after_next_frame(self.text_frame_written)

    def text_frame_written(self) -> None:
        self.text_frame_pending = False
        if self.rest_due:
            self.rest_due = False
            self.drawing.show_progress()
            self.redraw_soon()
