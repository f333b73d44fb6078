"""Where each generated token was decided: over each generated token, the block from which the logit lens's top-1
was that token and stayed so to the last block (engine.views.representations.decided_blocks).

     3    5  ✗     1
    ·the ·old ·cat ·sat       a mark over each generated token; the prompt before it, grey, without marks

The mark is the block's number (1 = decided early, L = only at the end), ✗ never (not the lens's top-1 even
after the last block: drawn below the top, forced, or chosen while a part was knocked out). Colour follows the
number (green early → red late, grey ✗); the numbers alone carry it without colour. Newest lines last.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from tui.heatmap import PLAIN
from tui.pieces import label_text
from tui.widgets.attention_map import StripsWidget

NEVER = "✗"
PIECE_WIDTH = 12  # characters of a token's text at most
PROMPT_STYLE = Style(color="#8a8a8a")
NEVER_STYLE = Style(color="#8a8a8a", bold=True)


def depth_style(block: int, n_layer: int, shade: bool) -> Style:
    """Green for the first block → red for the last; bold only without colour."""
    if shade:
        return Style(bold=True)
    x = 0.0 if n_layer <= 1 else block / (n_layer - 1)
    return Style(color=f"#{round(90 + 165 * x):02x}{round(210 - 120 * x):02x}64", bold=True)


def decided_mark(block: int | None) -> str:
    """The mark over a token: its decided block counted from 1, or ✗."""
    return NEVER if block is None else str(block + 1)


def strip_cells(pieces: list[str], first_generated: int, decided: list[int | None], n_layer: int, shade: bool) -> list[tuple]:
    """Per token: (mark, its style, text, its style), each token's two rows the same width plus a space."""
    cells = []
    for i, piece in enumerate(pieces):
        text = label_text(piece, PIECE_WIDTH)
        if i < first_generated:
            cells.append(("", PLAIN, text, PROMPT_STYLE))
            continue
        block = decided[i - first_generated]
        style = NEVER_STYLE if block is None and not shade else depth_style(block or 0, n_layer, shade)
        cells.append((decided_mark(block), style, text, style if not shade else PLAIN))
    return cells


def pad(text: str, cells: int) -> str:
    return text + " " * (cells - cell_len(text))


def decided_strips(pieces: list[str], first_generated: int, decided: list[int | None], n_layer: int, width: int, height: int, shade: bool):
    """Two rows per line of tokens (marks over text), wrapped at `width`; the newest lines that fit in `height`."""
    lines: list[list[tuple]] = [[]]
    used = 0
    for cell in strip_cells(pieces, first_generated, decided, n_layer, shade):
        size = max(cell_len(cell[0]), cell_len(cell[2])) + 1
        if used + size > width and lines[-1]:
            lines.append([])
            used = 0
        lines[-1].append(cell)
        used += size
    strips = []
    for line in lines[-max(1, height // 2) :]:
        marks, texts = [], []
        for mark, mark_style, text, text_style in line:
            size = max(cell_len(mark), cell_len(text)) + 1
            marks.append(Segment(pad(mark, size), mark_style))
            texts.append(Segment(pad(text, size), text_style))
        strips += [Strip(marks).adjust_cell_length(width, PLAIN), Strip(texts).adjust_cell_length(width, PLAIN)]
    return strips[:height]


class DecidedStrip(StripsWidget):
    DEFAULT_CSS = """
    DecidedStrip { width: 1fr; height: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pieces: list[str] = []
        self.first_generated = 0
        self.decided: list[int | None] = []
        self.n_layer = 1
        self.shade = False

    def show(self, pieces: list[str], first_generated: int, decided: list[int | None], n_layer: int, shade: bool) -> None:
        self.pieces, self.first_generated, self.decided, self.n_layer, self.shade = (
            list(pieces),
            first_generated,
            list(decided),
            n_layer,
            shade,
        )
        self.redraw_changed()

    def draw(self, width: int, height: int) -> list[Strip]:
        if not width or not height:
            return []
        return decided_strips(self.pieces, self.first_generated, self.decided, self.n_layer, width, height, self.shade)
