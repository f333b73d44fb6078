"""The lesson strip at the bottom of whatever screen a guided lesson happens on, its why/check card, and the
first screen's line on how to start learning.

The strip follows predict → observe → explain → check: before the task it asks the lesson's prediction;
once the observation has changed it says so and points at W (why it behaves so) and C (a question to check
understanding; C again shows the answer). Each line is one row: in a small terminal (compact) the strip is
four rows, so the pane the lesson talks about keeps its room; W and C open a card over the other panes.
"""

from __future__ import annotations

from rich.text import Text
from textual.content import Content
from textual.geometry import Region
from textual.widgets import Static

COMPACT_HEIGHT = 30  # below this many rows the strip leaves out the lesson's opening sentences
PANELS = (None, "why", "check", "answer")  # what the card shows: nothing, the why, the check, the check answered


class LessonBox(Static):
    """ "lesson 3/14 · title" with the keys, the lesson's sentences (when there is room), the prediction to make
    (or, once done, where the why and the check are), the task and the live observation."""

    DEFAULT_CSS = """
    LessonBox {
        height: auto;
        max-height: 9;
        background: $success 12%;
        padding: 0 1;
    }
    """
    KEYS = "W why · C check · ( ) · G closes"

    def __init__(self) -> None:
        super().__init__(id="lesson")
        self.shown: tuple = ()  # (number, total, lesson, observation, done, compact)

    def show(self, number: int, total: int, lesson, observation: str, done: bool, compact: bool) -> None:
        """Repaint only when something changed (the observation is refreshed a few times a second)."""
        if (number, total, lesson, observation, done, compact) != self.shown:
            self.shown = (number, total, lesson, observation, done, compact)
            self.refresh(layout=True)

    def render(self) -> Text:
        """Drawn at the strip's width now: its one-row lines are cut to it."""
        return lesson_text(*self.shown, max(self.content_size.width, 20)) if self.shown else Text()


def one_line(text: Text, width: int) -> Text:
    text.truncate(width, overflow="ellipsis")
    return text


def lesson_text(number: int, total: int, lesson, observation: str, done: bool, compact: bool, width: int) -> Text:
    """The strip: the heading and each step one row (cut to `width`), the observation wrapped; compact leaves out
    the lesson's opening sentences (W's card has them too)."""
    heading = Text.assemble((f"lesson {number}/{total} · {lesson.title}", "bold"), (f"  {LessonBox.KEYS}", "dim"))
    if done:
        step = Text.assemble(("Done: ", "bold green"), "was your prediction right? W: why it happens · C: check yourself")
    else:
        step = Text.assemble(("Predict: ", "bold yellow"), lesson.predict)
    lines = [one_line(heading, width)]
    if not compact:
        lines.append(Text(lesson.text))
    lines += [one_line(step, width), one_line(Text.assemble(("Try: ", "bold"), lesson.task), width)]
    lines.append(Text.assemble(("Now: ", "bold green"), observation))
    return Text("\n").join(lines)


class LessonCard(Static):
    """W's why or C's check of the open lesson: a card over the panes the lesson does not talk about."""

    DEFAULT_CSS = """
    LessonCard {
        overlay: screen;
        position: absolute;
        height: auto;
        padding: 0 1;
        border: round $success;
        background: $surface;
        border-title-color: $text;
        border-title-style: bold;
        border-subtitle-color: $text-muted;
    }
    """

    def __init__(self) -> None:
        super().__init__(id="lesson-card")
        self.shown: tuple = ()  # (title, text, place) drawn


def card_texts(lesson, panel: str, compact: bool) -> tuple[str, list[str], str]:
    """(title, bodies, subtitle) of the card for `panel` ("why", "check" or "answer"), the bodies longest first:
    compact, the strip left the lesson's opening sentences out, so the why card starts with them where they fit."""
    if panel == "why":
        return f"Why · {lesson.title}", [f"{lesson.text}\n\n{lesson.why}", lesson.why] if compact else [lesson.why], "W hides"
    if panel == "check":
        return "Check yourself", [lesson.check], "C: the answer"
    return "Check yourself", [f"{lesson.check}\n\nAnswer: {lesson.answer}"], "C hides"


def card_height(text: str, width: int) -> int:
    return len(Content(text).wrap(width - 4)) + 2  # a border and a cell of padding each side


def clear_place(width: int, bottom: int, keep: Region, text: str) -> Region | None:
    """A place for a card holding `text` on a screen `width` wide, in the rows above `bottom` (the footer; the
    strip may be covered), clear of `keep`: the full width above or below it, or a column beside it; None if
    none fits."""
    places = [  # (x, first row, width, rows free)
        (0, 0, width, keep.y),  # above the pane
        (0, keep.bottom, width, bottom - keep.bottom),  # below it
        (0, 0, keep.x, bottom),  # left of it
        (keep.right, 0, width - keep.right, bottom),  # right of it
    ]
    for x, y, w, rows in places:
        if w >= 40 and card_height(text, w) <= rows:
            return Region(x, y, w, card_height(text, w))
    return None


def card_place(width: int, bottom: int, keep: Region | None, texts: list[str]) -> tuple[Region, str]:
    """(place, text): the first of `texts` (longest first) that fits clear of `keep` (the lesson's pane), where;
    otherwise the last, at the top, as tall as the rows allow."""
    for text in texts if keep is not None else []:
        place = clear_place(width, bottom, keep, text)
        if place is not None:
            return place, text
    return Region(0, 0, width, min(card_height(texts[-1], width), bottom)), texts[-1]


class WayIn(Static):
    """The first screen's line on how to start learning, until a lesson is opened."""

    DEFAULT_CSS = """
    WayIn {
        height: 1;
        background: $success 12%;
        padding: 0 1;
    }
    """
    TEXT = "New here? G: guided lessons · E: explain the focused pane · ?: keys, symbols"

    def __init__(self) -> None:
        super().__init__(self.TEXT, id="way-in")
