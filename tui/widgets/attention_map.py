"""The attention heatmap widget: draws tui.heatmap's strips at whatever size it is given."""

from __future__ import annotations

import numpy as np
from textual.strip import Strip
from textual.widget import Widget

from tui.heatmap import PLAIN, render_heatmap


class AttentionMap(Widget):
    """Holds one [T, T] matrix; redraws its strips only when the data or its size change."""

    DEFAULT_CSS = """
    AttentionMap { width: 1fr; height: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.matrix = np.zeros((0, 0), np.float32)  # [T, T]
        self.pieces: list[str] = []
        self.highlight: int | None = None
        self.shade = False
        self.strips: list[Strip] = []
        self.strips_key: tuple | None = None

    def show(self, matrix: np.ndarray, pieces: list[str], highlight: int | None, shade: bool) -> None:
        self.matrix, self.pieces, self.highlight, self.shade = matrix, pieces, highlight, shade
        self.strips_key = None
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width, height = self.size
        key = (width, height)
        if self.strips_key != key:
            self.strips = render_heatmap(self.matrix, self.pieces, width, height, self.highlight, self.shade)
            self.strips_key = key
        return self.strips[y] if y < len(self.strips) else Strip.blank(width, PLAIN)
