"""The timeline under the Generation pane's text: per generated token, the chosen token's probability and
the entropy of the distribution it was drawn from, as two labelled sparkline rows (newest at the right).

    p       ▂▇█▅▁█
    ent≤2.1 ▅▁▁▃█▂

Each quantity has its own row and label, so it reads the same without colour. p is on a fixed 0–1
scale; entropy (nats) is scaled to the largest value shown, which its label states. A token without
a value (replayed from an older trace) is a blank cell. `show` repaints only the rows that changed.
"""

from __future__ import annotations

import math

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from tui.heatmap import PLAIN
from tui.transcript import Position
from tui.widgets.attention_map import StripsWidget

BARS = "▁▂▃▄▅▆▇█"
LABEL_WIDTH = 8  # "ent≤2.1 "
P_STYLE = Style(color="#78d778")
ENTROPY_STYLE = Style(color="#e6c850")
LABEL_STYLE = Style(dim=True)


def spark(values: list[float | None], top: float) -> str:
    """One bar per value on 0..top; None is a blank cell."""
    cells = []
    for value in values:
        if value is None or not math.isfinite(value):
            cells.append(" ")
        else:
            x = 0.0 if top <= 0 else min(max(value / top, 0.0), 1.0)
            cells.append(BARS[min(int(x * len(BARS)), len(BARS) - 1)])
    return "".join(cells)


def timeline_strips(probabilities: list[float | None], entropies: list[float | None], width: int) -> list[Strip]:
    """Two strips `width` wide: the newest tokens that fit, p over 0–1 and entropy over its shown maximum."""
    n = max(0, width - LABEL_WIDTH)
    probabilities, entropies = probabilities[-n:] if n else [], entropies[-n:] if n else []
    top = max([0.0, *(e for e in entropies if e is not None and math.isfinite(e))])  # 0.0, not -0.0, when greedy
    p_label = "p".ljust(LABEL_WIDTH)
    entropy_label = f"ent≤{top:.1f}".ljust(LABEL_WIDTH)[:LABEL_WIDTH] if entropies else "entropy".ljust(LABEL_WIDTH)
    rows = [(p_label, spark(probabilities, 1.0), P_STYLE), (entropy_label, spark(entropies, top), ENTROPY_STYLE)]
    return [Strip([Segment(label, LABEL_STYLE), Segment(bars, style)]).adjust_cell_length(width, PLAIN) for label, bars, style in rows]


class Timeline(StripsWidget):
    DEFAULT_CSS = """
    Timeline { height: 2; width: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.probabilities: list[float | None] = []  # per generated token, oldest first
        self.entropies: list[float | None] = []

    def show(self, positions: list[Position]) -> None:
        generated = [p for p in positions if p.generated]
        probabilities, entropies = [p.p_raw for p in generated], [p.entropy for p in generated]
        if probabilities == self.probabilities and entropies == self.entropies:
            return
        self.probabilities, self.entropies = probabilities, entropies
        self.redraw_changed()

    def draw(self, width: int, height: int) -> list[Strip]:
        return (timeline_strips(self.probabilities, self.entropies, width) + [Strip.blank(width, PLAIN)] * height)[:height]
