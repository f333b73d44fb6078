"""The notice over everything while the terminal is below the 80×24 the panes need; it goes when the terminal grows."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.geometry import Size
from textual.screen import ModalScreen
from textual.widgets import Static

MIN_SIZE = Size(80, 24)  # what the README promises works


def too_small(size: Size) -> bool:
    return size.width < MIN_SIZE.width or size.height < MIN_SIZE.height


def too_small_text(size: Size) -> str:
    return (
        f"The terminal is {size.width}×{size.height}: tfund-tui needs at least {MIN_SIZE.width}×{MIN_SIZE.height} "
        "to show its panes. Enlarge it and the app comes back as it was (q quits)."
    )


class TooSmallScreen(ModalScreen[None]):
    BINDINGS = [Binding("q", "app.quit", "Quit")]
    DEFAULT_CSS = """
    TooSmallScreen { align: center middle; background: $background; }  /* opaque: the squeezed panes behind stay hidden */
    TooSmallScreen > Static { width: 1fr; height: auto; padding: 0 1; }
    """

    def __init__(self, size: Size) -> None:
        super().__init__()
        self.shown_size = size

    def compose(self) -> ComposeResult:
        yield Static(too_small_text(self.shown_size), id="too-small")

    def show(self, size: Size) -> None:
        self.shown_size = size
        self.query_one("#too-small", Static).update(too_small_text(size))
