"""The Layers pane: residual-stream norm and layer-to-layer cosine per layer, and the logit lens.

The chart is drawn here, in the layout plotext gave it (a frame, y ticks, the norm as a braille line and the cosines as × marks,
x ticks), straight into strips: plotext's build plus re-parsing its ANSI output took ~9× as long per
token. Only the lines that changed are repainted.
"""

from __future__ import annotations

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.strip import Strip

from engine.events import LensEntry
from tui.pieces import fit_parts, label_text
from tui.widgets.attention_map import StripsWidget

SERIES_COLOURS = ("#9d65ff", "#98e024")  # norm, cosine: the colours plotext's first two series had on screen
BRAILLE_BASE = 0x2800
BRAILLE_BITS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]])  # [4, 2] dot (row, col) -> bit
COSINE_MARK = "×"  # cosines are marks at each layer, norms a line: the two differ without colour too
PLAIN = Style()
MAX_Y_TICKS = 7
LENS_SHARE = 0.4  # the most of the Layers pane the lens column takes: the chart keeps the rest
LENS_MIN_WIDTH = 12
LENS_MAX_WIDTH = 22  # a 14-character piece and a two-digit block; the width follows the pane only, so a new token
# never changes the layout (that would repaint the whole pane)
TICK_STEPS = (1, 2, 5, 10, 20, 50, 100)  # x ticks every this many blocks: the smallest whose labels fit


def lens_runs(lens: list[LensEntry]) -> list[tuple[int, LensEntry]]:
    """Consecutive blocks guessing the same token as one run: (its first block's layer, its last block's entry)."""
    runs: list[tuple[int, LensEntry]] = []
    for entry in lens:
        if runs and runs[-1][1].token_id == entry.token_id:
            runs[-1] = (runs[-1][0], entry)
        else:
            runs.append((entry.layer, entry))
    return runs


def lens_lines(lens: list[LensEntry], rows: int) -> list[tuple[int, LensEntry]]:
    """(first layer, last entry) per line: a line per block while they fit in `rows`, else runs of blocks that guess
    alike share a line, the latest runs split back into single blocks as far as the room allows."""
    runs = lens_runs(lens)
    if len(lens) <= rows or len(runs) >= rows:
        return [(entry.layer, entry) for entry in lens] if len(lens) <= rows else runs
    by_layer = {entry.layer: entry for entry in lens}
    lines: list[tuple[int, LensEntry]] = []
    for n, (first, last) in enumerate(reversed(runs)):
        left = len(runs) - n - 1  # the runs before this one: a line each at least
        if len(lines) + (last.layer - first + 1) + left <= rows:
            lines += [(layer, by_layer[layer]) for layer in range(last.layer, first - 1, -1)]
        else:
            lines.append((first, last))
    return lines[::-1]


def lens_percent(p: float) -> str:
    """A lens row's p in two digits: " 7%", "41%"; "99%" for anything above (it is never certain)."""
    return f"{min(p * 100, 99):2.0f}%"


def lens_strips(lens: list[LensEntry], width: int, height: int, chosen: int | None = None) -> list[Strip]:
    """` 3 ·the 41%` after each block (counted from 1) under a `lens→next` header; when they do not all fit, blocks
    that guess the same token share a line (`4–12 ·the 41%`, the last block's p), and then the last lines are kept.
    Time travel: the blocks whose guess is the token the step chose (id `chosen`) in reverse."""
    dim, bold, hit = Style(dim=True), Style(bold=True), Style(bold=True, reverse=True)
    rows = max(height - 1, 1)
    runs = lens_lines(lens, rows)
    shown = runs[-rows:]
    blocks = [str(last.layer + 1) if first == last.layer else f"{first + 1}–{last.layer + 1}" for first, last in shown]
    block_w = max([2, *(len(block) for block in blocks)])
    token_w = max(3, width - block_w - 5)  # the block, a space, the token, " 41%"
    header = fit_parts(["lens→next", *([] if len(shown) == len(runs) else [f"(last {len(shown)})"])], width, " ")
    lines = [Strip([Segment(header, dim)])]
    for block, (_, entry) in zip(blocks, shown):
        lines.append(
            Strip(
                [
                    Segment(f"{block:>{block_w}} ", dim),
                    Segment(f"{label_text(entry.text, token_w):<{token_w}}", hit if entry.token_id == chosen else bold),
                    Segment(f" {lens_percent(entry.p)}", dim),
                ]
            )
        )
    blank = [Strip.blank(width, PLAIN)] * height
    return ([line.crop(0, width).adjust_cell_length(width, PLAIN) for line in lines] + blank)[:height]


def layer_series(norms: np.ndarray, cosines: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per layer (0 = embedding): residual norm scaled to its maximum, then cos(layer, layer-1), as (x, y)."""
    series = []
    if len(norms):
        top = float(np.max(norms)) or 1.0
        series.append((np.arange(len(norms)), np.asarray(norms, float) / top))  # [L + 1]
    if len(cosines):
        series.append((np.arange(1, len(cosines) + 1), np.asarray(cosines, float)))  # [L]
    return series


def x_tick_labels(n_points: int, centre_of, width: int) -> tuple[list[str], list[int]]:  # -> `width` cells, the points named
    """Every block named when the labels fit (one blank between them), else every 2nd, 5th, 10th…, and always
    "emb" and the last block; `centre_of(x)` is the cell under point x."""
    for step in TICK_STEPS:
        ticks = list(range(0, n_points, step))
        if ticks[-1] != n_points - 1:
            ticks.append(n_points - 1)
        cells = [" "] * width
        placed = []
        for x in reversed(ticks):  # the last block first: it is kept, the tick before it gives way
            text = "emb" if x == 0 else str(x)
            start = max(0, centre_of(x) - (len(text) - 1) // 2)
            if start + len(text) <= width and all(c == " " for c in cells[max(0, start - 1) : start + len(text) + 1]):
                cells[start : start + len(text)] = text
                placed.append(x)
            elif x != ticks[-2] or x == 0:
                break
        else:
            return cells, placed
    return [" "] * width, []


def line_dots(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # [n], [n] -> [m], [m] dot coords
    """Straight segments between consecutive points, one dot per step along the longer axis."""
    if len(xs) == 1:
        return xs.round().astype(int), ys.round().astype(int)
    cols, rows = [], []
    for x0, y0, x1, y1 in zip(xs[:-1], ys[:-1], xs[1:], ys[1:]):
        steps = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        cols.append(np.linspace(x0, x1, steps))
        rows.append(np.linspace(y0, y1, steps))
    return np.concatenate(cols).round().astype(int), np.concatenate(rows).round().astype(int)


def braille(dots: np.ndarray) -> np.ndarray:  # [4R, 2C] bool -> [R, C] braille bit patterns
    rows, cols = dots.shape[0] // 4, dots.shape[1] // 2
    return (dots.reshape(rows, 4, cols, 2) * BRAILLE_BITS[None, :, None, :]).sum(axis=(1, 3))


def merged_strip(cells: list[tuple[str, Style]]) -> Strip:
    """One segment per run of cells sharing a style."""
    segments: list[Segment] = []
    text, style = "", PLAIN
    for char, cell_style in cells:
        if cell_style is not style and text:
            segments.append(Segment(text, style))
            text = ""
        text, style = text + char, cell_style
    segments.append(Segment(text, style))
    return Strip(segments)


def chart_strips(norms: np.ndarray, cosines: np.ndarray, width: int, height: int, xlabel: str = "after block") -> list[Strip]:
    """Exactly `height` strips `width` wide: y ticks, a frame, the norm line and cosine marks, x ticks ("emb", then
    after block 1…L) and label."""
    blank = [Strip.blank(width, PLAIN) for _ in range(height)]
    series = layer_series(norms, cosines)
    plot_rows = height - 4  # top frame, bottom frame, x tick labels, x label
    if not series or plot_rows < 1:
        return blank
    values = np.concatenate([ys for _, ys in series])
    y_low, y_high = float(values.min()), float(values.max())
    if y_high - y_low < 1e-9:
        y_low, y_high = y_low - 0.5, y_high + 0.5
    n_ticks = min(MAX_Y_TICKS, plot_rows)
    tick_rows = np.linspace(0, plot_rows - 1, n_ticks).round().astype(int)  # [n_ticks]
    tick_values = y_high - tick_rows / max(plot_rows - 1, 1) * (y_high - y_low)  # [n_ticks]
    tick_labels = {int(row): f"{value:.2f}" for row, value in zip(tick_rows, tick_values)}
    label_w = max(len(label) for label in tick_labels.values())
    plot_cols = width - label_w - 2  # the frame's left and right sides
    if plot_cols < 2:
        return blank

    n_points = max(len(xs) for xs, _ in series)
    x_span = max(n_points - 1, 1)
    styles = [Style.parse(colour) for colour in SERIES_COLOURS]
    grid: list[list[tuple[str, Style]]] = [[(" ", PLAIN)] * plot_cols for _ in range(plot_rows)]
    xs, ys = series[0]  # the norm: a braille line through every layer
    dots = np.zeros((plot_rows * 4, plot_cols * 2), bool)  # [4R, 2C]
    cols, rows = line_dots(xs / x_span * (plot_cols * 2 - 1), (y_high - ys) / (y_high - y_low) * (plot_rows * 4 - 1))
    dots[rows, cols] = True
    for row, code_row in enumerate(braille(dots).tolist()):  # [R, C]
        grid[row] = [(chr(BRAILLE_BASE + code), styles[0]) if code else cell for code, cell in zip(code_row, grid[row])]
    if len(series) > 1:  # the cosines: one mark per layer, over the line where they meet
        xs, ys = series[1]
        for col, row in zip(
            (xs / x_span * (plot_cols - 1)).round().astype(int), ((y_high - ys) / (y_high - y_low) * (plot_rows - 1)).round().astype(int)
        ):
            grid[row][col] = (COSINE_MARK, styles[1])

    lines = [Strip([Segment(" " * label_w + "┌" + "─" * plot_cols + "┐", PLAIN)])]
    for row, cells in enumerate(grid):
        axis = f"{tick_labels[row]:>{label_w}}┤" if row in tick_labels else " " * label_w + "│"
        lines.append(merged_strip([*[(c, PLAIN) for c in axis], *cells, ("│", PLAIN)]))

    frame = ["─"] * plot_cols

    def centre_of(x: int) -> int:  # the cell of point x's tick in the line under the chart
        return label_w + 1 + round(x / x_span * (plot_cols - 1))

    labels, named = x_tick_labels(n_points, centre_of, width)
    for x in named:
        frame[centre_of(x) - label_w - 1] = "┬"
    lines.append(Strip([Segment(" " * label_w + "└" + "".join(frame) + "┘", PLAIN)]))
    lines.append(Strip([Segment("".join(labels), PLAIN)]))
    scaled = f"{xlabel} · norm max {float(np.max(norms)):.3g}" if len(norms) else xlabel  # the legend is the pane's subtitle
    caption = scaled if len(scaled) <= plot_cols + 2 else xlabel
    lines.append(Strip([Segment(" " * label_w + caption.center(plot_cols + 2), PLAIN)]))
    return [line.adjust_cell_length(width, PLAIN) for line in lines]


class LayerChart(StripsWidget):
    """The norms/cosines chart; nothing is repainted when the data did not change."""

    DEFAULT_CSS = """
    LayerChart { width: 1fr; height: 1fr; background: $surface; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.norms = np.zeros(0)  # [L + 1]
        self.cosines = np.zeros(0)  # [L]

    def show(self, norms: np.ndarray, cosines: np.ndarray) -> None:
        if np.array_equal(norms, self.norms) and np.array_equal(cosines, self.cosines):
            return
        self.norms, self.cosines = norms, cosines
        self.redraw_changed()

    def draw(self, width: int, height: int) -> list[Strip]:
        base = self.rich_style  # the pane's colours under the chart's own
        return [strip.apply_style(base) for strip in chart_strips(self.norms, self.cosines, width, height)]


class LensColumn(StripsWidget):
    """The logit lens beside the chart; nothing is repainted when it did not change."""

    DEFAULT_CSS = """
    LensColumn { width: 16; height: 1fr; padding-left: 1; }  /* LayersView sets the width the guesses need */
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lens: list[LensEntry] = []
        self.chosen: int | None = None  # time travel: the token id the shown step chose

    def show(self, lens: list[LensEntry], chosen: int | None = None) -> None:
        if (lens, chosen) != (self.lens, self.chosen):
            self.lens, self.chosen = lens, chosen
            self.redraw_changed()

    def draw(self, width: int, height: int) -> list[Strip]:
        base = self.rich_style
        return [strip.apply_style(base) for strip in lens_strips(self.lens, width, height, self.chosen)]


class LayersView(Horizontal):
    """The chart and, beside it, the lens column: LENS_SHARE of the pane, between LENS_MIN_WIDTH and LENS_MAX_WIDTH."""

    DEFAULT_CSS = """
    LayersView { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield LayerChart(id="layer-plot")
        yield LensColumn(id="lens")

    def show(self, norms: np.ndarray, cosines: np.ndarray, lens: list[LensEntry], chosen: int | None = None) -> None:
        """Redraw what changed; `chosen`: time travel, the token id the shown step chose."""
        self.query_one(LayerChart).show(norms, cosines)
        self.query_one(LensColumn).show(lens, chosen)

    def on_resize(self) -> None:
        column = self.query_one(LensColumn)
        width = max(LENS_MIN_WIDTH, min(LENS_MAX_WIDTH, int(self.size.width * LENS_SHARE)))
        if column.styles.width is None or column.styles.width.value != width:
            column.styles.width = width
