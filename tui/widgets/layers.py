"""The Layers pane: residual-stream norm and layer-to-layer cosine per layer, and the logit lens."""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static
from textual_plotext import PlotextPlot

from engine.events import LensEntry
from tui.pieces import label_text


def lens_text(lens: list[LensEntry], rows: int, width: int) -> Text:
    """`L3 ·the 41%` per layer, the last layers kept when they do not all fit."""
    text = Text(no_wrap=True, overflow="crop")
    text.append("lens→next", style="dim")
    shown = lens[-max(rows - 1, 1) :] if lens else []
    token_w = max(3, width - 9)
    for entry in shown:
        text.append(f"\n{entry.layer:>2} ", style="dim")
        text.append(f"{label_text(entry.text, token_w):<{token_w}}", style="bold")
        text.append(f" {min(entry.p * 100, 99):2.0f}%", style="dim")
    return text


def plot_layers(plt, norms: np.ndarray, cosines: np.ndarray) -> None:
    """Per layer (0 = embedding): residual norm scaled to its maximum, and cos(layer, layer-1).

    One shared axis keeps the plot narrow enough for an 80-column terminal; the norm's maximum is
    in its label.
    """
    plt.clear_data()
    plt.clear_figure()
    if len(norms):
        top = float(np.max(norms)) or 1.0
        plt.plot(list(range(len(norms))), [float(v) / top for v in norms], label=f"norm/{top:.3g}", marker="braille")
    if len(cosines):
        plt.plot(list(range(1, len(cosines) + 1)), [float(v) for v in cosines], label="cos", marker="braille")
    n_points = len(norms)
    plt.xticks(list(range(n_points)) if n_points <= 8 else list(range(0, n_points, max(1, n_points // 6))))
    plt.xlabel("layer")


class LayersView(Horizontal):
    DEFAULT_CSS = """
    LayersView { height: 1fr; }
    LayersView PlotextPlot { width: 1fr; height: 1fr; }
    LayersView #lens { width: 16; height: 1fr; padding-left: 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data: tuple = (np.zeros(0), np.zeros(0), [])  # norms [L + 1], cosines [L], lens

    def compose(self) -> ComposeResult:
        yield PlotextPlot(id="layer-plot")
        yield Static(id="lens")

    def show(self, norms: np.ndarray, cosines: np.ndarray, lens: list[LensEntry]) -> str:
        """Redraw; returns a one-line legend for the pane's border."""
        self.data = (norms, cosines, lens)
        plot = self.query_one(PlotextPlot)
        plot_layers(plot.plt, norms, cosines)
        plot.refresh()
        self.show_lens()
        return f"norm÷{float(np.max(norms)):.3g} · cos(l, l-1)" if len(norms) else ""

    def show_lens(self) -> None:
        lens_box = self.query_one("#lens", Static)
        lens_box.update(lens_text(self.data[2], max(lens_box.size.height, 4), max(lens_box.size.width - 1, 12)))

    def on_resize(self) -> None:
        self.call_after_refresh(self.show_lens)
