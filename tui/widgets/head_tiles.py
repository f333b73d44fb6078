"""Every head at a glance: a grid of small attention heatmaps, one tile per layer × head, paged to fit.

A tile is a header line ("B4.H8 ent 1.23": the head, counted from 1 as tui.numbering says, its KV head when grouped,
and the statistic the grid is sorted by) over a heatmap body pooled to the tile's cells (tui.heatmap's fit/pool/levels,
no labels). The selected tile's header is reversed and marked with ▶, so it shows without colour too. Tiles are as
large as the screen allows: every head on one page in the largest square-ish tiles that fit, else pages of the
smallest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from tui.heatmap import COLOUR_LEVELS, PLAIN, SHADES, fit_axis, grid_rows, levels, pool
from tui.pieces import first_fit
from tui.widgets.attention_map import StripsWidget

TILE_WIDTH = 16  # cells of a tile's heatmap and header at the least: "▶B30.H9·kv3 0.37"
TILE_GAP = 1  # blank columns between tiles and blank lines between rows of tiles
MIN_BODY = 3  # text rows of a tile's heatmap at the least
MAX_BODY = 16
STAT_ABBREVIATIONS = {"entropy": "ent", "sink": "sink", "prev_token": "prev", "duplicate": "dup", "induction": "ind"}


def stat_text(value: float, decimals: int = 2) -> str:
    """A statistic as shown: two decimals (or `decimals`), "–" where it is undefined (NaN)."""
    return "–" if value is None or not math.isfinite(value) else f"{value:.{decimals}f}"


def sort_decimals(values: list[float]) -> int:
    """The fewest decimals (2 to 4) at which values sorted highest first still read in their order: neighbours that
    differ do not round to the same text."""
    shown = [v for v in values if math.isfinite(v)]
    for decimals in (2, 3):
        texts = [stat_text(v, decimals) for v in shown]
        if all(a == b or ta != tb for a, b, ta, tb in zip(shown, shown[1:], texts, texts[1:])):
            return decimals
    return 4


@dataclass(frozen=True)
class TileLayout:
    columns: int
    rows: int
    body: int  # text rows of each tile's heatmap
    width: int = TILE_WIDTH  # cells of each tile

    @property
    def per_page(self) -> int:
        return self.columns * self.rows


def tile_layout(width: int, height: int, n_tiles: int) -> TileLayout:
    """Every tile on one page, as large as fits (a body of b rows about 2b cells wide: square in colour), the tiles
    then widened to share the width; when even the smallest do not all fit, pages of TILE_WIDTH × (header + body ≥
    MIN_BODY) tiles, the bodies taller to fill the height."""
    n_tiles = max(n_tiles, 1)
    for body in range(MAX_BODY, MIN_BODY - 1, -1):
        columns = max(1, (width + TILE_GAP) // (max(TILE_WIDTH, 2 * body) + TILE_GAP))
        rows = max(1, (height + TILE_GAP) // (1 + body + TILE_GAP))
        if columns * rows >= n_tiles:
            columns = min(columns, n_tiles)
            return TileLayout(columns, -(-n_tiles // columns), body, max(TILE_WIDTH, (width + TILE_GAP) // columns - TILE_GAP))
    columns = max(1, (width + TILE_GAP) // (TILE_WIDTH + TILE_GAP))
    rows = max(1, min((height + TILE_GAP) // (1 + MIN_BODY + TILE_GAP), -(-n_tiles // columns)))
    body = max(1, min(MAX_BODY, (height + TILE_GAP) // rows - 1 - TILE_GAP))
    return TileLayout(columns, rows, body)


def tile_body(matrix: np.ndarray, width: int, height: int, shade: bool, scale: str = "log") -> list[list[Segment]]:  # [T, T] -> rows
    """The heatmap of one head in width × height cells (pooled or magnified to fit), no labels."""
    n_tokens = matrix.shape[0]
    px_rows = height if shade else 2 * height
    rows = fit_axis(n_tokens, px_rows, max_scale=max(1, px_rows // max(n_tokens, 1)), even=False)
    cols = fit_axis(n_tokens, width, max_scale=max(1, width // max(n_tokens, 1)), even=False)
    pooled, masked = pool(matrix.astype(np.float32), rows, cols)
    level_map, _ = levels(pooled, masked, len(SHADES) if shade else COLOUR_LEVELS, scale, cols.starts == 0)
    return grid_rows(level_map, shade)


def render_tiles(
    matrices: list[np.ndarray],  # the page's heads, each [T, T]
    headers: list[tuple[str, ...]],  # each tile's header, variants longest first
    selected: int | None,  # index on this page of the selected tile
    layout: TileLayout,
    width: int,
    height: int,
    shade: bool,
    scale: str = "log",  # tui.heatmap.SCALES
) -> list[Strip]:
    """Exactly `height` strips, `width` cells wide: the tiles of one page, row by row."""
    blank_line = [Segment(" " * width, PLAIN)]
    lines: list[list[Segment]] = []
    tile_h = 1 + layout.body
    header_style, marked = Style(bold=True), Style(bold=True, reverse=True)
    for row_start in range(0, len(matrices), layout.columns):
        indices = range(row_start, min(row_start + layout.columns, len(matrices)))
        block: list[list[Segment]] = [[] for _ in range(tile_h)]
        for n, i in enumerate(indices):
            gap = [Segment(" " * TILE_GAP, PLAIN)] if n else []
            mark = "▶" if i == selected else " "
            text = (mark + first_fit(headers[i], layout.width - 1)).ljust(layout.width)
            block[0] += [*gap, Segment(text, marked if i == selected else header_style)]
            body = tile_body(matrices[i], layout.width, layout.body, shade, scale)
            for y in range(layout.body):
                segments = body[y] if y < len(body) else []
                used = sum(len(s.text) for s in segments)
                block[1 + y] += [*gap, *segments, Segment(" " * (layout.width - used), PLAIN)]
        lines += block
        lines += [list(blank_line)] * TILE_GAP
    strips = [Strip(segments).adjust_cell_length(width, PLAIN) for segments in lines[:height]]
    return strips + [Strip.blank(width, PLAIN)] * (height - len(strips))


class HeadTiles(StripsWidget):
    """All heads in a given order, paged: the page shown is the one holding the selected head.

    `matrix_of(i)` gives the i-th head's [T, T] attention (only the page's heads are asked for);
    `show` with the same inputs repaints nothing.
    """

    DEFAULT_CSS = """
    HeadTiles { width: 1fr; height: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.key: tuple = ()
        self.matrix_of = lambda i: np.zeros((0, 0), np.float32)
        self.headers: list[tuple[str, ...]] = []
        self.selected = 0
        self.shade = False
        self.scale = "log"

    def layout(self) -> TileLayout:
        width, height = self.size
        return tile_layout(width or TILE_WIDTH, height or 1 + MIN_BODY, len(self.headers))

    def page(self) -> tuple[int, int, int]:
        """(page shown, 0-based; number of pages; tiles per page) at the widget's size."""
        per_page = self.layout().per_page
        return self.selected // per_page, max(1, -(-len(self.headers) // per_page)), per_page

    def show(self, key: tuple, matrix_of, headers: list[tuple[str, ...]], selected: int, shade: bool, scale: str = "log") -> None:
        """`key` names what the matrices are (the context, the order): unchanged with the rest, nothing is drawn."""
        if (key, headers, selected, shade, scale) == (self.key, self.headers, self.selected, self.shade, self.scale):
            return
        self.key, self.matrix_of, self.headers, self.selected, self.shade, self.scale = (
            key,
            matrix_of,
            list(headers),
            selected,
            shade,
            scale,
        )
        self.redraw_changed()

    def draw(self, width: int, height: int) -> list[Strip]:
        layout = tile_layout(width, height, len(self.headers))
        first = self.selected // layout.per_page * layout.per_page
        shown = range(first, min(first + layout.per_page, len(self.headers)))
        matrices = [self.matrix_of(i) for i in shown]
        headers = [self.headers[i] for i in shown]
        return render_tiles(matrices, headers, self.selected - first, layout, width, height, self.shade, self.scale)
