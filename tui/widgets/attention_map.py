"""The attention heatmap widget, and StripsWidget: a widget drawn as strips that repaints only changed lines."""

from __future__ import annotations

import numpy as np
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from tui.heatmap import PLAIN, render_heatmap


def changed_lines(old: list[Strip], new: list[Strip]) -> list[int]:
    """Indices of the lines that differ (every line, old ones past the new end included, when the number of lines changed)."""
    if len(old) != len(new):
        return list(range(max(len(old), len(new))))
    return [y for y, (before, after) in enumerate(zip(old, new)) if before != after]


class StripsWidget(Widget):
    """Drawn by `draw(width, height) -> strips`; after its inputs change, `redraw_changed()` repaints
    only the lines that differ, so Textual re-renders, and the terminal receives, only those."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.strips: list[Strip] = []
        self.strips_key: tuple | None = None  # the size the strips were drawn for

    def draw(self, width: int, height: int) -> list[Strip]:
        raise NotImplementedError

    def redraw_changed(self) -> None:
        width, height = self.size
        if self.strips_key != (width, height) or not width or not height:
            self.strips_key = None  # not drawn at this size yet: render_line draws every line
            self.refresh()
            return
        strips = self.draw(width, height)
        for y in changed_lines(self.strips, strips):
            self.refresh(Region(0, y, width, 1))
        self.strips = strips

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self.strips_key = None  # strips may carry the widget's colours (a theme change): draw again

    def render_line(self, y: int) -> Strip:
        width, height = self.size
        if self.strips_key != (width, height):
            self.strips = self.draw(width, height)
            self.strips_key = (width, height)
        return self.strips[y] if y < len(self.strips) else Strip.blank(width, PLAIN)


class AttentionMap(StripsWidget):
    """Holds one [T, T] matrix; the same inputs again (a redraw for another pane's sake) repaint nothing."""

    DEFAULT_CSS = """
    AttentionMap { width: 1fr; height: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.matrix = np.zeros((0, 0), np.float32)  # [T, T]
        self.pieces: list[str] = []
        self.highlight: int | None = None
        self.shade = False
        self.causal = True  # False for an encoder: every token sees every other, nothing is masked
        self.scale = "log"  # one of tui.heatmap.SCALES

    def show(self, matrix: np.ndarray, pieces: list[str], highlight: int | None, shade: bool, scale: str = "log") -> None:
        same = (highlight, shade, scale) == (self.highlight, self.shade, self.scale)
        if same and np.array_equal(matrix, self.matrix) and pieces == self.pieces:
            return
        self.matrix, self.pieces, self.highlight, self.shade, self.scale = matrix, list(pieces), highlight, shade, scale
        self.redraw_changed()

    def draw(self, width: int, height: int) -> list[Strip]:
        return render_heatmap(self.matrix, self.pieces, width, height, self.highlight, self.shade, self.causal, self.scale)
