"""The timeline under the Generation pane's text: per generated token, the chosen token's probability and
the entropy of the distribution it was drawn from, as two labelled sparkline rows (newest at the right).

    p           ▂▇█▅▁█
    ent≤2.1/7.3 ▅▁▁▃█▂

Each quantity has its own row and label, so it reads the same without colour. p is on a fixed 0–1
scale; entropy (nats) is scaled to the largest value shown, which its label states, beside the largest
any distribution over the vocabulary can have (ln V, when the vocabulary's size is known). A token without
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
LABEL_WIDTH = 12  # "ent≤2.1/7.3 "
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


def timeline_strips(
    probabilities: list[float | None], entropies: list[float | None], width: int, max_entropy: float | None = None
) -> list[Strip]:
    """Two strips `width` wide: the newest tokens that fit, p over 0–1 and entropy over its shown maximum
    (labelled with `max_entropy`, ln V, when given)."""
    n = max(0, width - LABEL_WIDTH)
    probabilities, entropies = probabilities[-n:] if n else [], entropies[-n:] if n else []
    top = max([0.0, *(e for e in entropies if e is not None and math.isfinite(e))])  # 0.0, not -0.0, when greedy
    p_label = "p".ljust(LABEL_WIDTH)
    most = "" if max_entropy is None else f"/{max_entropy:.1f}"
    entropy_label = f"ent≤{top:.1f}{most}".ljust(LABEL_WIDTH)[:LABEL_WIDTH] if entropies else "entropy".ljust(LABEL_WIDTH)
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
        self.max_entropy: float | None = None  # ln V of the loaded model's vocabulary

    def show(self, positions: list[Position], max_entropy: float | None = None) -> None:
        generated = [p for p in positions if p.generated]
        probabilities, entropies = [p.p_raw for p in generated], [p.entropy for p in generated]
        if (probabilities, entropies, max_entropy) == (self.probabilities, self.entropies, self.max_entropy):
            return
        self.probabilities, self.entropies, self.max_entropy = probabilities, entropies, max_entropy
        self.redraw_changed()

    def draw(self, width: int, height: int) -> list[Strip]:
        strips = timeline_strips(self.probabilities, self.entropies, width, self.max_entropy)
        return (strips + [Strip.blank(width, PLAIN)] * height)[:height]
