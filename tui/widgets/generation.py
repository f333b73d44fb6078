"""The Generation pane's text: prompt and generated tokens with visible boundaries, coloured by probability."""

from __future__ import annotations

import math

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from tui.pieces import visible
from tui.transcript import Position

TOKEN_TINTS = ("#2a3142", "#1f2533")  # alternating backgrounds mark token boundaries
P_COLOURS = ((235, 90, 90), (235, 200, 80), (120, 215, 120))  # unlikely → likely
P_FLOOR = 1e-3  # probabilities at or below this get the "unlikely" end of the scale


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


def token_text(positions: list[Position], selected: int | None, shade: bool) -> Text:
    """The whole context as one Text: alternating tints (underlines in shade mode) between tokens."""
    text = Text()
    for i, position in enumerate(positions):
        style = Style()
        if shade:
            style += Style(underline=i % 2 == 1, dim=not position.generated)
        else:
            style += Style(bgcolor=TOKEN_TINTS[i % 2])
            style += Style(color=probability_colour(position.p_raw)) if position.generated else Style(color="#9aa3b5")
        if position.forced:
            style += Style(italic=True, bold=True)
        if i == selected:
            style += Style(reverse=True)
        text.append(shown_piece(position.piece), style)
    return text


class GenerationView(VerticalScroll, can_focus=True, inherit_bindings=False):
    """Scrolls to the newest token unless the user selected an older one.

    Only up/down/page keys scroll: left, right and end belong to the screen (they select tokens).
    """

    BINDINGS = [
        Binding("up", "scroll_up", "Scroll up", show=False),
        Binding("down", "scroll_down", "Scroll down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.shown: tuple | None = None  # what the text was last built from: the same again repaints nothing

    def compose(self):
        yield Static(id="tokens")

    def show(self, positions: list[Position], selected: int | None, shade: bool, follow: bool) -> None:
        shown = ([(p.token_id, p.piece, p.p_raw, p.forced, p.generated) for p in positions], selected, shade)
        if shown != self.shown:
            self.shown = shown
            self.query_one("#tokens", Static).update(token_text(positions, selected, shade))
        if follow:
            self.call_after_refresh(self.scroll_end, animate=False)
