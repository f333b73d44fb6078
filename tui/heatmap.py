"""Attention heatmaps as terminal cells: pure functions from a [T, T] matrix to lines of Strips.

Colour mode draws "▀" half blocks (foreground = upper pixel row, background = lower one), so a
character cell holds two rows of the matrix and pixels come out roughly square. Shade mode, for
16-colour and NO_COLOR terminals, draws one pixel as two shade characters (` ░▒▓█`). Either way the
matrix is fitted to the space it is given: magnified by a whole factor while it fits, max-pooled
into bins once it does not (a 256-token context never becomes a 256×256 dump).

Three colour scales (SCALES): log (two decades below the brightest cell: small weights stay visible),
linear, and "sink excluded" (linear, the columns holding position 0 left out of the scale and drawn in
their own mark: a real model's first token can take most of every row and leave the rest of the map dark).

Neighbouring cells of the same colour pair are one segment (the masked triangle is one run per
row), and styles are memoised per colour pair: fewer segments to compose and fewer escape
sequences written to the terminal, with the same cells on screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from engine.events import counted
from engine.model.head_stats import attention_matrix
from tui.pieces import fit_parts, label_text

HALF_BLOCK = "▀"
SHADES = " ░▒▓█"  # low → high attention in shade mode
MASKED_SHADE = "·"  # above the diagonal: a token cannot attend to later tokens
ROW_MARKER = "◀"  # marks the highlighted (newest or selected) row
MIN_COLUMN_LABEL = 3  # characters of a token's piece under its column; narrower columns get position ticks
MAX_PIXELS_PER_TOKEN = 8  # a short context grows to fill a large pane, up to this many pixel rows per token
SCALES = ("log", "linear", "sink excluded")  # the colour scales, in the order a key cycles them
LOG_DECADES = 2  # the log scale spans 1/100 of the brightest cell to the brightest
COLOUR_LEVELS = 32  # colours are quantised so styles can be reused
COLOURMAP = np.array(  # dark indigo → magenta → orange → pale yellow (inferno-like, readable in 256 colours)
    [(30, 20, 70), (90, 30, 120), (170, 50, 110), (235, 100, 50), (250, 200, 60), (252, 250, 190)], dtype=float
)
MASKED_RGB = (52, 52, 52)  # neutral grey for the causal mask, distinct from the colour map's dark end
SINK_RGB = (60, 110, 160)  # steel blue: position 0's columns when the scale leaves them out
SINK_SHADE = "×"
NO_PIXEL = -2  # level of the missing pixel row under an odd last row
SINK = -3  # level of a pixel of position 0 left out of the scale
PLAIN = Style()  # every segment gets a style: Textual's NO_COLOR filter fails on segments without one


@dataclass
class Fit:
    """How T tokens map onto n pixels along one axis."""

    starts: np.ndarray  # [n_px] first token of each pixel's bin
    ends: np.ndarray  # [n_px] one past the last token of each pixel's bin
    magnification: int  # pixels per token (0 when tokens are pooled into bins)

    @property
    def n_px(self) -> int:
        return len(self.starts)


def fit_axis(n_tokens: int, n_px: int, max_scale: int, even: bool) -> Fit:
    """Magnify by the largest whole factor ≤ max_scale that fits (even if asked, so labels align), else pool."""
    if n_tokens < 1 or n_px < 1:
        return Fit(np.zeros(0, int), np.zeros(0, int), 0)
    scale = min(n_px // n_tokens, max_scale)
    if even and scale > 2 and scale % 2:
        scale -= 1
    if scale >= 1:
        starts = np.repeat(np.arange(n_tokens), scale)  # [T * scale]
        return Fit(starts, starts + 1, scale)
    edges = np.linspace(0, n_tokens, n_px + 1).round().astype(int)  # [n_px + 1] bin edges, all bins non-empty
    return Fit(edges[:-1], edges[1:], 0)


def pool(matrix: np.ndarray, rows: Fit, cols: Fit, causal: bool = True) -> tuple[np.ndarray, np.ndarray]:  # [T, T] -> [r, c], [r, c]
    """Max over each pixel's bin of rows and columns, and which pixels lie wholly above the diagonal (causal only)."""
    by_rows = matrix[rows.starts] if rows.magnification else np.maximum.reduceat(matrix, rows.starts, axis=0)  # [r, T]
    pooled = by_rows[:, cols.starts] if cols.magnification else np.maximum.reduceat(by_rows, cols.starts, axis=1)  # [r, c]
    masked = cols.starts[None, :] > (rows.ends[:, None] - 1)  # [r, c] every column after every row of the bin
    if not causal:  # an encoder attends both ways: nothing is masked
        masked[:] = False
    return pooled, masked


def levels(
    pooled: np.ndarray, masked: np.ndarray, n_levels: int, scale: str = "log", sink_cols: np.ndarray | None = None
) -> tuple[np.ndarray, float]:  # [r, c], [r, c] bool, n, scale, [c] bool -> [r, c] ints, the brightest weight
    """Quantise to 0..n_levels-1 on `scale` (SCALES), relative to the brightest visible cell; -1 where masked.
    "sink excluded": the columns `sink_cols` (those holding position 0) are SINK and left out of the brightest."""
    visible = np.where(masked, 0.0, pooled)  # [r, c]
    excluded = np.zeros(visible.shape[1], bool) if scale != "sink excluded" or sink_cols is None else sink_cols  # [c]
    rest = visible[:, ~excluded]
    top = float(rest.max()) if rest.size else 0.0
    if top <= 0:
        scaled = np.zeros_like(visible)
    elif scale == "log":
        with np.errstate(divide="ignore"):
            scaled = np.clip(1 + np.log10(visible / top) / LOG_DECADES, 0.0, 1.0)  # [r, c] 0 at 1/100 of the top
    else:
        scaled = np.clip(visible / top, 0.0, 1.0)
    quantised = np.minimum((scaled * n_levels).astype(int), n_levels - 1)  # [r, c]
    quantised = np.where(excluded[None, :], SINK, quantised)
    return np.where(masked, -1, quantised), top


def level_rgb(level: int, n_levels: int) -> tuple[int, int, int]:
    """Colour-map a quantised level; -1 (masked) is grey, SINK steel blue."""
    if level == SINK:
        return SINK_RGB
    if level < 0:
        return MASKED_RGB
    x = level / max(n_levels - 1, 1) * (len(COLOURMAP) - 1)
    i = min(int(x), len(COLOURMAP) - 2)
    rgb = COLOURMAP[i] + (COLOURMAP[i + 1] - COLOURMAP[i]) * (x - i)
    return tuple(int(round(c)) for c in rgb)


@cache
def half_block_style(upper: int, lower: int) -> Style:
    """fg = the upper pixel's level, bg = the lower one's; lower NO_PIXEL (an odd last row) leaves bg unset."""
    fg = Color.from_rgb(*level_rgb(upper, COLOUR_LEVELS))
    bg = None if lower == NO_PIXEL else Color.from_rgb(*level_rgb(lower, COLOUR_LEVELS))
    return Style(color=fg, bgcolor=bg)


def run_edges(codes: np.ndarray) -> list[int]:  # [c] -> run boundaries [0, ..., c]
    """Where a row of codes changes value: runs of equal cells become one segment."""
    return [0, *(np.flatnonzero(codes[1:] != codes[:-1]) + 1).tolist(), len(codes)]


def grid_rows(level_map: np.ndarray, shade: bool) -> list[list[Segment]]:  # [r, c] -> text rows of segments
    """The heatmap body: two pixel rows per text row in colour, one in shade mode; runs of equal cells merged."""
    if shade:
        marks = {-1: MASKED_SHADE, SINK: SINK_SHADE}
        return [[Segment("".join(marks[v] if v < 0 else SHADES[v] for v in row), PLAIN)] for row in level_map]
    upper = level_map[0::2]  # [R, c] pixel rows drawn as foreground
    lower = level_map[1::2]  # [R or R - 1, c] pixel rows drawn as background
    if len(lower) < len(upper):  # an odd number of pixel rows: nothing below the last one
        lower = np.vstack([lower, np.full((1, level_map.shape[1]), NO_PIXEL)])
    codes = (upper - SINK) * (COLOUR_LEVELS - SINK) + (lower - SINK)  # [R, c] one integer per (upper, lower) pair
    rows: list[list[Segment]] = []
    for up, low, code in zip(upper.tolist(), lower.tolist(), codes):
        edges = run_edges(code)
        rows.append([Segment(HALF_BLOCK * (end - start), half_block_style(up[start], low[start])) for start, end in zip(edges, edges[1:])])
    return rows


def render_heatmap(
    matrix: np.ndarray,  # [T, T] attention, lower-triangular
    pieces: list[str],  # T token pieces, for the labels
    width: int,
    height: int,
    highlight: int | None,  # token whose row is marked (newest or selected), or None
    shade: bool,
    causal: bool = True,  # False for an encoder's attention: the upper triangle is drawn, not masked
    scale: str = "log",  # one of SCALES
) -> list[Strip]:
    """Exactly `height` strips, each `width` cells wide: row labels + grid, column labels, legend."""
    n_tokens = matrix.shape[0]
    grid_text_rows = height - 2  # column labels and legend below the grid
    blank = [Strip.blank(width, PLAIN) for _ in range(height)]
    if n_tokens == 0 or width < 8 or grid_text_rows < 1:
        return blank
    # a text row holds 2 pixel rows in colour (1 in shade) and is about as tall as 2 columns are wide
    px_per_row, cols_per_square = (1, 2) if shade else (2, 1)
    rows = fit_axis(n_tokens, grid_text_rows * px_per_row, max_scale=MAX_PIXELS_PER_TOKEN // cols_per_square, even=not shade)
    spans = [row_span(rows, y, px_per_row) for y in range(-(-rows.n_px // px_per_row))]  # the tokens of each text row
    widest = max(len(row_label(pieces, first, last, width)) for first, last in spans)
    label_w = max(3, min(widest, width // 5))  # whole labels while they take at most a fifth of the pane
    grid_cols = width - label_w - 2  # a space after the labels and the row marker at the right
    square = max(rows.magnification, 1) * cols_per_square  # columns per token for square cells
    cols = fit_axis(n_tokens, grid_cols, max_scale=2 * square, even=False)  # up to twice as wide, room for labels
    pooled, masked = pool(matrix.astype(np.float32), rows, cols, causal)
    level_map, top = levels(pooled, masked, len(SHADES) if shade else COLOUR_LEVELS, scale, cols.starts == 0)
    strong, marked, dim = Style(bold=True), Style(reverse=True, bold=True), Style(dim=True)
    lines: list[Strip] = []
    labelled = -1  # the last token given a label: a token spanning several text rows is labelled once
    marked_span = None  # the tokens the highlighted row covers, when it covers several
    for (first_token, last_token), segments in zip(spans, grid_rows(level_map, shade)):
        is_marked = highlight is not None and first_token <= highlight <= last_token
        if is_marked and last_token > first_token:
            marked_span = (first_token, last_token)
        label = row_label(pieces, first_token, last_token, label_w).rjust(label_w) if first_token != labelled else " " * label_w
        labelled = first_token
        row = [Segment(label, marked if is_marked else dim), Segment(" ", PLAIN), *segments]
        row.append(Segment(ROW_MARKER if is_marked else " ", strong))
        lines.append(Strip(row).adjust_cell_length(width, PLAIN))
    lines.append(column_label_strip(pieces, cols, label_w, width, dim))
    lines.append(
        Strip([Segment(legend(n_tokens, marked_span, rows, cols, top, matrix, scale, shade, width), dim)]).adjust_cell_length(width, PLAIN)
    )
    return (lines + blank)[:height]


def legend(
    n_tokens: int, span: tuple | None, rows: Fit, cols: Fit, top: float, matrix: np.ndarray, scale: str, shade: bool, width: int
) -> str:
    """The line under the map, most important first: parts that do not fit are left out, never cut."""
    parts = [counted(n_tokens, "token")]
    if span is not None:
        parts.append(f"◀ covers {span[0]}–{span[1]}")
    parts.append(f"brightest {top:.2f}")  # the scale's top: position 0 left out under "sink excluded"
    if scale == "sink excluded":
        parts.append(f"position 0 ({SINK_SHADE if shade else 'blue'}) up to {float(matrix[:, 0].max()):.2f}")
    if not (rows.magnification and cols.magnification):
        parts.append("max-pooled")
    parts.append(f"{scale} scale")  # every map says its scale where there is room (the main screen's subtitle too)
    return fit_parts(parts, width)


def row_span(rows: Fit, y: int, px_per_row: int) -> tuple[int, int]:
    """The first and last token of text row `y`."""
    first_px = y * px_per_row
    last_px = min(first_px + px_per_row, rows.n_px) - 1
    return int(rows.starts[first_px]), int(rows.ends[last_px]) - 1


def row_label(pieces: list[str], first: int, last: int, width: int) -> str:
    """A text row's label: its token's piece, both pieces of a pair ("·a/·sm…"), or the positions it covers."""
    if first == last:
        text = label_text(pieces[first], width)
    elif last == first + 1:
        half = (width - 1) // 2
        text = f"{label_text(pieces[first], half)}/{label_text(pieces[last], half)}"
    else:
        text = range_label(first, last, width)
    return text


def range_label(first: int, last: int, width: int) -> str:
    """Positions first…last in at most `width` cells, never a number cut short: "12–14", else "12–…", "12…" or "…"."""
    for text in (f"{first}–{last}", f"{first}–…", f"{first}…"):
        if len(text) <= width:
            return text
    return "…"


def column_label_strip(pieces: list[str], cols: Fit, label_w: int, width: int, style: Style) -> Strip:
    """Below the grid: each column's token piece when 3 or more characters fit, else position ticks."""
    if cols.magnification >= MIN_COLUMN_LABEL + 1:
        step = cols.magnification
        text = "".join(label_text(pieces[t].lstrip(" ") or pieces[t], step - 1).ljust(step) for t in range(len(pieces)))
    else:
        text = tick_labels(len(pieces), cols)
    return Strip([Segment(" " * (label_w + 1), PLAIN), Segment(text, style)]).adjust_cell_length(width, PLAIN)


def tick_labels(n_tokens: int, cols: Fit) -> str:
    """Positions at round steps (1, 2, 5, 10, 20, 50, ...) placed under the column holding them."""
    cells = [" "] * cols.n_px
    widest = len(str(n_tokens - 1)) + 1
    step = next(s for s in (m * 10**e for e in range(7) for m in (1, 2, 5)) if s * cols.n_px >= widest * n_tokens)
    for position in range(0, n_tokens, step):
        px = int(np.searchsorted(cols.ends, position, side="right"))  # the column whose bin holds `position`
        tick = str(position)
        if px + len(tick) <= len(cells) and all(c == " " for c in cells[max(0, px - 1) : px + len(tick)]):
            cells[px : px + len(tick)] = list(tick)
    return "".join(cells)


def head_grid(rows: list[np.ndarray], layer: int, head: int | None) -> np.ndarray:  # T x [L, H, i+1] -> [T, T]
    """One layer's attention over the context from per-token rows; head None averages the heads (row by row, before
    the matrix is built: [T, T] in memory, not [H, T, T])."""
    if not rows:
        return np.zeros((0, 0), np.float32)
    if head is None:
        picked = [row[layer : layer + 1].mean(axis=1, keepdims=True, dtype=np.float32) for row in rows]  # T x [1, 1, i+1]
    else:
        picked = [row[layer : layer + 1, head : head + 1] for row in rows]  # T x [1, 1, i+1]
    return attention_matrix(picked)[0, 0]
