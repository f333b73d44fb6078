"""Frame pacing (tui/pacing.py) with a stand-in screen: what is drawn when, frame by frame."""

import threading
from types import SimpleNamespace

import numpy as np

from tui.pacing import FramePacing
from tui.transcript import Position


class Screen:
    """Records what the pacing asked it to draw; `frame()` is Textual writing the next frame."""

    def __init__(self) -> None:
        self.drawn: list[str] = []
        self.callbacks: list = []
        self.drawable = self.is_current = True
        self.app = SimpleNamespace(after_next_frame=self.callbacks.append)

    def draw_text(self) -> bool:
        self.drawn.append("text")
        return True  # a row to repaint

    def redraw(self) -> None:
        self.drawn.append("all")

    def show_progress(self) -> None:
        self.drawn.append("status")

    def frame(self) -> None:
        callbacks, self.callbacks[:] = list(self.callbacks), []
        for callback in callbacks:
            callback()


def pacing_of(running: bool = False, selected: int | None = None) -> tuple[FramePacing, Screen]:
    screen = Screen()
    session = SimpleNamespace(engine=SimpleNamespace(running=running), selected_token=selected, changed=False)
    pacing = FramePacing(screen, session)
    screen.redraw = lambda: (screen.drawn.append("all"), pacing.redrawn())  # as MainScreen.redraw does
    return pacing, screen


def token() -> Position:
    return Position(7, "cat", np.zeros((0, 0, 0), np.float32), True, 0.5)


def test_a_keys_token_is_drawn_alone_and_the_engine_waits_for_its_frame():
    pacing, screen = pacing_of()
    shown = threading.Event()
    pacing.token_chosen(token(), shown)
    assert screen.drawn == ["text"] and pacing.chosen is not None and not shown.is_set()
    screen.frame()
    assert shown.is_set()  # the engine thread may read the token in now


def test_the_text_goes_first_and_the_status_and_other_panes_a_frame_later():
    pacing, screen = pacing_of()
    pacing.text_changed()
    assert screen.drawn == ["text"]
    screen.frame()
    assert screen.drawn == ["text", "status", "all"]


def test_during_a_run_a_batch_is_one_redraw_and_no_token_is_drawn_alone():
    pacing, screen = pacing_of(running=True)
    shown = threading.Event()
    pacing.token_chosen(token(), shown)
    assert shown.is_set() and screen.drawn == []
    pacing.text_changed()
    assert screen.drawn == ["all"] and not screen.callbacks


def test_time_travel_or_a_hidden_screen_does_not_draw_the_chosen_token():
    pacing, screen = pacing_of(selected=3)
    shown = threading.Event()
    pacing.token_chosen(token(), shown)
    assert shown.is_set() and screen.drawn == [] and pacing.chosen is None
    pacing, screen = pacing_of()
    screen.is_current = False
    pacing.text_changed()  # not on screen: the other panes are drawn at once (no frame to wait for)
    assert screen.drawn == ["status", "all"]


def test_a_redraw_asked_too_soon_waits_for_the_next_check_and_a_session_change_asks_for_one():
    pacing, screen = pacing_of()
    pacing.next_redraw_at = float("inf")  # the last redraw was too recent
    pacing.redraw_soon()
    assert screen.drawn == [] and pacing.needs_redraw
    pacing.next_redraw_at = 0.0
    pacing.redraw_if_needed()
    assert screen.drawn == ["all"] and not pacing.needs_redraw
    pacing.session.changed = True  # a command changed what is shown (new settings, a head opened elsewhere)
    pacing.redraw_if_needed()
    assert screen.drawn == ["all", "all"] and not pacing.session.changed


def test_a_step_that_failed_takes_its_chosen_token_off_the_screen():
    pacing, screen = pacing_of()
    pacing.token_chosen(token(), threading.Event())
    pacing.command_done()  # CommandDone without TokensGenerated: the step failed
    assert pacing.chosen is None and screen.drawn[-1] == "all"
