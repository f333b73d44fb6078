"""The Generation pane's text: prompt and generated tokens with visible boundaries, coloured by probability.

The text is drawn line by line from cached strips: a new token re-wraps only the paragraph it
changed and repaints only the lines whose text or colours changed (usually the last one). Lines
wrap as Textual wraps a Static's text, so the pane looks as it did when it was one.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache

from rich.cells import cell_len, chop_cells
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from engine.views.pieces import visible
from tui.transcript import Position

TOKEN_TINTS = ("#2a3142", "#1f2533")  # alternating backgrounds mark token boundaries
P_COLOURS = ((235, 90, 90), (235, 200, 80), (120, 215, 120))  # unlikely → likely
P_FLOOR = 1e-3  # probabilities at or below this get the "unlikely" end of the scale
WORD = re.compile(r"\s*\S+\s*")  # a word and the spaces around it: lines break between these
MOUSE_SCROLL_LINES = 2  # lines one notch of the mouse wheel scrolls
SCROLL_THUMB, SCROLL_TRACK = "┃", "│"  # the text's scrollbar, in its last column, once it has more lines than rows
SCROLLBAR_STYLE = Style(color="#6b7385")  # muted, as the prompt's grey (no `dim`: Textual's filters would redraw it)


def probability_colour(p: float | None) -> str:
    """log-scale red → yellow → green; None (below the shown candidates) is red."""
    x = 0.0 if p is None or p <= P_FLOOR else min(1.0, (math.log10(p) - math.log10(P_FLOOR)) / -math.log10(P_FLOOR))
    low, high = (P_COLOURS[0], P_COLOURS[1]) if x < 0.5 else (P_COLOURS[1], P_COLOURS[2])
    t = x * 2 if x < 0.5 else x * 2 - 1
    r, g, b = (round(a + (c - a) * t) for a, c in zip(low, high))
    return f"#{r:02x}{g:02x}{b:02x}"


def shown_piece(piece: str) -> str:
    """Newlines stay visible as ↵ before the line break; an incomplete character shows as □."""
    return visible(piece, newlines=True) if piece else "□"


@lru_cache(maxsize=4096)
def token_style(index_odd: bool, p_raw: float | None, generated: bool, forced: bool, selected: bool, shade: bool) -> Style:
    """Alternating tints (underlines in shade mode) between tokens; colour by probability; reverse when selected."""
    if shade:
        style = Style(underline=index_odd, dim=not generated)
    else:
        style = Style(bgcolor=TOKEN_TINTS[index_odd]) + Style(color=probability_colour(p_raw) if generated else "#9aa3b5")
    if forced:
        style += Style(italic=True, bold=True)
    return style + Style(reverse=True) if selected else style


def wrap_offsets(paragraph: str, width: int) -> list[int]:
    """Where a paragraph breaks into lines `width` cells wide, as Textual wraps text: a word that does not
    fit goes to the next line (its trailing spaces may overhang), a word wider than a line is cut."""
    breaks: list[int] = []
    used = 0
    for match in WORD.finditer(paragraph):
        start, word = match.start(), match.group()
        size = cell_len(word.rstrip())
        if size <= width - used:
            used += cell_len(word)
        elif size > width:
            for piece in chop_cells(word, width):
                if start:
                    breaks.append(start)
                start += len(piece)
            used = cell_len(piece)
        elif used and start:
            breaks.append(start)
            used = cell_len(word)
    return breaks


def paragraph_lines(paragraph: str, offsets: list[int], width: int) -> list[tuple[int, int]]:
    """[start, end) of each line: trailing spaces dropped except on the last line, which is cut to the width."""
    bounds = [0, *offsets, len(paragraph)]
    lines = [(start, start + len(paragraph[start:end].rstrip())) for start, end in zip(bounds, bounds[1:-1])]
    last = paragraph[bounds[-2] :]
    if cell_len(last) > width:
        last = chop_cells(last, width)[0]
    return lines + [(bounds[-2], bounds[-2] + len(last))]


class TokenLines(Widget):
    """The context as wrapped lines of tinted tokens, drawn from cached strips: the last lines that fit
    (following the newest token) or, scrolled back, the lines from `top`.

    It fills its pane and never changes size, so a new token never lays the screen out again (in
    Textual a growing widget does, 15-45 ms a frame during a run on this 2-core box): `show` repaints
    the lines that changed, or every row when the lines shifted up by one. Its last column is the
    scrollbar, once the text has more lines than rows.
    """

    DEFAULT_CSS = """
    TokenLines { height: 1fr; }
    """

    @dataclass
    class Clicked(Message):
        """A token was clicked: its index in the context."""

        index: int

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pieces: list[str] = []  # each token's text as shown
        self.token_styles: list[Style] = []  # each token's style
        self.starts: list[int] = [0]  # where each token's text starts in `plain`, and the end
        self.plain = ""  # the text on screen: the shown pieces joined
        self.wrapped: dict[tuple[str, int], list[int]] = {}  # (paragraph, width) -> its line breaks
        self.wrap_width = 0  # the width `runs` were wrapped for (0: not yet)
        self.runs: list[tuple[tuple[str, Style], ...]] = []  # per line: its runs of text sharing a style
        self.strips: dict[tuple, Strip] = {}  # runs -> the line drawn
        self.top: int | None = None  # the first line shown once scrolled back; None: follow the newest line

    def latest_first_line(self) -> int:
        """The first row's line when the newest line is on the last row."""
        return max(0, len(self.runs) - self.size.height)

    def first_line(self) -> int:
        """The line drawn on the first row."""
        latest = self.latest_first_line()
        return latest if self.top is None else min(self.top, latest)

    def show(self, pieces: list[str], styles: list[Style]) -> bool:
        """New contents: repaint the rows whose line changed. True when a row is to be repainted."""
        if pieces == self.pieces and styles == self.token_styles:
            return False
        self.pieces, self.token_styles = pieces, styles
        self.plain = "".join(pieces)
        self.starts = [0]
        for piece in pieces:
            self.starts.append(self.starts[-1] + len(piece))
        width = self.text_width()
        if not self.size.width or width != self.wrap_width:  # not drawn yet, or resized since: every row anew
            self.wrap_width = 0  # wrapped again when drawn
            self.refresh()
            return True
        before, first_before = self.runs, self.first_line()
        self.runs = self.line_runs(width)
        first = self.first_line()
        if first != first_before or (len(before) != len(self.runs) and self.overflows()):  # the lines or the scrollbar moved
            self.refresh()
            return True
        repainted = False
        for y, line in enumerate(range(first, first + self.size.height)):
            if (before[line] if line < len(before) else None) != (self.runs[line] if line < len(self.runs) else None):
                self.refresh(Region(0, y, self.size.width, 1))
                repainted = True
        return repainted

    def follow(self) -> None:
        """Show the newest line from now on (after scrolling back)."""
        if self.top is not None:
            self.top = None
            self.refresh()

    def scroll_lines(self, n: int) -> None:
        """Scroll back (n < 0) or forward; reaching the newest line follows it again."""
        latest = self.latest_first_line()
        top = max(0, min(self.first_line() + n, latest))
        self.top = None if top >= latest else top
        self.refresh()

    def on_resize(self) -> None:
        self.top = None  # `top` counted lines at the old width: follow the newest line again

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.scroll_lines(-MOUSE_SCROLL_LINES)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self.scroll_lines(MOUSE_SCROLL_LINES)

    def token_at(self, x: int, y: int) -> int | None:
        """The index of the token drawn at cell (x, y) of the widget, or None past the text."""
        spans = self.line_spans(max(self.wrap_width, 1))
        line = self.first_line() + y
        if not 0 <= y or line >= len(spans) or not self.pieces:
            return None
        start, end = spans[line]
        offset, used = start, 0
        while offset < end and used + cell_len(self.plain[offset]) <= x:
            used += cell_len(self.plain[offset])
            offset += 1
        if offset >= end:
            return None
        return bisect_right(self.starts, offset) - 1

    def on_click(self, event: events.Click) -> None:
        index = self.token_at(event.x, event.y)
        if index is not None:
            self.post_message(self.Clicked(index))

    def line_spans(self, width: int) -> list[tuple[int, int]]:
        """[start, end) in `plain` of each line at this width; paragraphs wrapped before are looked up."""
        wrapped, spans, start = {}, [], 0
        for paragraph in self.plain.split("\n"):
            key = (paragraph, width)
            offsets = wrapped[key] = self.wrapped[key] if key in self.wrapped else wrap_offsets(paragraph, width)
            spans += [(start + a, start + b) for a, b in paragraph_lines(paragraph, offsets, width)]
            start += len(paragraph) + 1
        self.wrapped = wrapped
        return spans

    def line_runs(self, width: int) -> list[tuple[tuple[str, Style], ...]]:
        """Per line at this width: (text, style) of each token's part of it."""
        lines = []
        for start, end in self.line_spans(max(width, 1)):
            runs = []
            token = bisect_right(self.starts, start) - 1
            while start < end:
                stop = min(end, self.starts[token + 1])
                runs.append((self.plain[start:stop], self.token_styles[token]))
                start, token = stop, token + 1
            lines.append(tuple(runs))
        return lines

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self.strips = {}  # the strips carry the widget's colours (a theme change): draw again

    def overflows(self) -> bool:
        return len(self.runs) > self.size.height

    def scrollbar_cell(self, y: int) -> str:
        """Row y of the one-column scrollbar: the thumb covers the rows shown, out of every line."""
        n_lines, height = len(self.runs), self.size.height
        if n_lines <= height:
            return " "
        thumb = max(1, height * height // n_lines)
        start = round(self.first_line() * (height - thumb) / (n_lines - height))
        return SCROLL_THUMB if start <= y < start + thumb else SCROLL_TRACK

    def text_width(self) -> int:
        return max(1, self.size.width - 1)  # the last column is the scrollbar's

    def render_line(self, y: int) -> Strip:
        text_width = self.text_width()
        if text_width != self.wrap_width:
            self.wrap_width, self.runs = text_width, self.line_runs(text_width)
            self.strips = {}  # drawn at the old width
        base = self.rich_style
        padding = Style(bgcolor=base.bgcolor)  # as Textual pads a Static's lines
        scrollbar = Strip([Segment(self.scrollbar_cell(y), padding + SCROLLBAR_STYLE)])
        line = self.first_line() + y
        if line >= len(self.runs):
            return Strip.join([Strip.blank(text_width, padding), scrollbar])
        runs = self.runs[line]
        if runs not in self.strips:
            if len(self.strips) > 4 * max(len(self.runs), 64):
                self.strips = {}  # forget lines no longer shown
            segments = [Segment(text, base + style) for text, style in runs]
            self.strips[runs] = Strip(segments).adjust_cell_length(text_width, padding)
        return Strip.join([self.strips[runs], scrollbar])


class GenerationView(Widget, can_focus=True):
    """The Generation pane's text. It follows the newest token; up/down/page keys and the mouse wheel
    scroll back, and the next token (or end) follows again. Left, right and end belong to the screen
    (they select tokens)."""

    BINDINGS = [
        Binding("up", "scroll_lines(-1)", "Scroll up", show=False),
        Binding("down", "scroll_lines(1)", "Scroll down", show=False),
        Binding("pageup", "scroll_pages(-1)", "Page up", show=False),
        Binding("pagedown", "scroll_pages(1)", "Page down", show=False),
    ]

    def compose(self):
        yield TokenLines(id="tokens")

    def action_scroll_lines(self, n: int) -> None:
        self.query_one(TokenLines).scroll_lines(n)

    def action_scroll_pages(self, n: int) -> None:
        tokens = self.query_one(TokenLines)
        tokens.scroll_lines(n * max(1, tokens.size.height - 1))

    def show(self, positions: list[Position], selected: int | None, shade: bool, follow: bool) -> bool:
        """True when a row of the text is to be repainted."""
        pieces = [shown_piece(p.piece) for p in positions]
        styles = [token_style(i % 2 == 1, p.p_raw, p.generated, p.forced, i == selected, shade) for i, p in enumerate(positions)]
        tokens = self.query_one(TokenLines)
        if follow:
            tokens.follow()
        return tokens.show(pieces, styles)
