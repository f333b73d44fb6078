"""The representations plot: every projected token's point at one layer, labelled with its token, and where each
point was one layer before, on a character canvas sized to the widget.

    ⠂ ●·village          ● a token's point at this layer, its label beside it (left of it near the right edge)
         ⠄●·small        ⠂ the same token one layer before (braille dots: two columns × four rows per cell)

The axes are fixed for every layer (the bounds of all layers' points), so a point that moves on screen moved
in the projection. A label that would cover another point or label is left out (the point stays).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from tui.heatmap import PLAIN
from tui.pieces import label_text
from tui.widgets.attention_map import StripsWidget

POINT = "●"
LABEL_WIDTH = 8  # characters of a token's label at most
BRAILLE_BASE = 0x2800
BRAILLE_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))  # [column][row] of a cell's 2 × 4 dots
TRAIL_STYLE = Style(color="#8a8a8a")
LABEL_STYLE = Style(bold=False)  # not PLAIN: a label kept apart from the blank cells before it (an SVG export keeps its place)
SHADE_POINT_STYLE = Style(bold=True)


def position_colour(i: int, n: int) -> str:
    """Early tokens blue, late tokens orange: the colour says where a point's token sits in the context."""
    x = 0.0 if n <= 1 else i / (n - 1)
    start, end = (90, 160, 255), (255, 150, 60)
    r, g, b = (round(a + (b - a) * x) for a, b in zip(start, end))
    return f"#{r:02x}{g:02x}{b:02x}"


@dataclass
class Canvas:
    """Cells of text and style, drawn into in layers: braille dots first, points and labels over them."""

    width: int
    height: int

    def __post_init__(self) -> None:
        self.dots = np.zeros((self.height, self.width), np.int32)  # braille bits per cell
        self.chars: dict[tuple[int, int], tuple[str, Style]] = {}  # (row, column) -> a point's or a label's character

    def dot(self, px: int, py: int) -> None:
        """One braille dot at dot coordinates (px in [0, 2W), py in [0, 4H))."""
        self.dots[py // 4, px // 2] |= BRAILLE_BITS[px % 2][py % 4]

    def free(self, row: int, columns: range) -> bool:
        return columns.start >= 0 and columns.stop <= self.width and all((row, c) not in self.chars for c in columns)

    def write(self, row: int, column: int, text: str, style: Style) -> None:
        for i, char in enumerate(text):
            self.chars[(row, column + i)] = (char, style)

    def strips(self) -> list[Strip]:
        rows = []
        for row in range(self.height):
            segments = []
            for column in range(self.width):
                if (row, column) in self.chars:
                    segments.append(Segment(*self.chars[(row, column)]))
                elif self.dots[row, column]:
                    segments.append(Segment(chr(BRAILLE_BASE + int(self.dots[row, column])), TRAIL_STYLE))
                else:
                    segments.append(Segment(" ", PLAIN))
            rows.append(Strip(segments).simplify())
        return rows


def scale(values: np.ndarray, low: float, high: float, n: int) -> np.ndarray:  # [P] -> [P] int in [0, n)
    span = high - low
    if span <= 0:
        return np.full(values.shape, n // 2, np.int64)
    return np.clip(np.round((values - low) / span * (n - 1)), 0, n - 1).astype(np.int64)


def plot_strips(
    points: np.ndarray,  # [P, 2] this layer's coordinates
    before: np.ndarray | None,  # [P, 2] the layer before's, or None at the first layer
    pieces: list[str],  # P token pieces
    bounds: tuple[float, float, float, float],  # x low, x high, y low, y high: the same for every layer
    width: int,
    height: int,
    shade: bool,
) -> list[Strip]:
    """The plot as strips; a label that would cover another point or label is left out."""
    canvas = Canvas(width, height)
    x_low, x_high, y_low, y_high = bounds
    if before is not None:
        dot_x = scale(before[:, 0], x_low, x_high, 2 * width)
        dot_y = 4 * height - 1 - scale(before[:, 1], y_low, y_high, 4 * height)  # PC2 up
        for px, py in zip(dot_x, dot_y):
            canvas.dot(int(px), int(py))
    columns = scale(points[:, 0], x_low, x_high, width)
    rows = height - 1 - scale(points[:, 1], y_low, y_high, height)
    styles = [SHADE_POINT_STYLE if shade else Style(color=position_colour(i, len(pieces)), bold=True) for i in range(len(pieces))]
    for i, (column, row) in enumerate(zip(columns, rows)):
        canvas.write(int(row), int(column), POINT, styles[i])
    for i, (column, row) in enumerate(zip(columns, rows)):
        label = label_text(pieces[i], LABEL_WIDTH)
        right, left = range(column + 1, column + 1 + len(label)), range(column - len(label), column)
        place = right if canvas.free(row, right) else left if canvas.free(row, left) else None
        if place is not None:
            canvas.write(int(row), place.start, label, LABEL_STYLE if shade else Style(color=position_colour(i, len(pieces))))
    return canvas.strips()


def plot_bounds(coords: np.ndarray) -> tuple[float, float, float, float]:  # [L + 1, P, 2] -> x low, x high, y low, y high
    """The box holding every layer's points (so the axes stay put while the layers play)."""
    flat = coords.reshape(-1, 2)
    return float(flat[:, 0].min()), float(flat[:, 0].max()), float(flat[:, 1].min()), float(flat[:, 1].max())


class ProjectionPlot(StripsWidget):
    """Holds one layer's points; `show` repaints only the lines that changed (playing the layers)."""

    DEFAULT_CSS = """
    ProjectionPlot { width: 1fr; height: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.points = np.zeros((0, 2))
        self.before: np.ndarray | None = None
        self.pieces: list[str] = []
        self.bounds = (0.0, 0.0, 0.0, 0.0)
        self.shade = False

    def show(self, points: np.ndarray, before: np.ndarray | None, pieces: list[str], bounds: tuple, shade: bool) -> None:
        self.points, self.before, self.pieces, self.bounds, self.shade = points, before, list(pieces), bounds, shade
        self.redraw_changed()

    def draw(self, width: int, height: int) -> list[Strip]:
        if not len(self.points) or not width or not height:
            return [Strip.blank(width, PLAIN) for _ in range(height)]
        return plot_strips(self.points, self.before, self.pieces, self.bounds, width, height, self.shade)
