"""Representations (V): every token's residual vector at each layer in 2-D, and where each generated token was decided.

One forward over the context (prompt and generated tokens) on a thread worker, on the session's engine
(the NumpyLM, or transformers' model itself in a torch session: LoadedModel.net_for), through
engine.views.representations: the residual stream before the final norm at emb and after
each block, projected on two principal components fitted on all layers together, so the points move
between layers on fixed axes. [ ] step through the layers, space plays them; positions whose norm
dwarfs the others' (a real model's first token) are left out and named, o puts them back. Below, the
strip marks over each generated token the block from which the logit lens already had it as its top-1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from engine.views.representations import (
    Projection,
    context_residuals,
    decided_blocks,
    layer_names,
    norm_ratios,
    projection,
    projection_json,
)
from tui.captions import model_title
from tui.keys import QUIT_HELP_SAVE, back_keys, key_pair
from tui.pieces import label_text
from tui.screens.error import ShowsWorkerErrors
from tui.widgets.decided_strip import NEVER, DecidedStrip
from tui.widgets.pane import ExplainsPanes, pane
from tui.widgets.projection_plot import POINT, ProjectionPlot, plot_bounds

PLAY_INTERVAL_S = 0.7  # how long each layer shows while the layers play
DECIDED_LEGEND = f"number: decided at that block · {NEVER} never"


@dataclass
class RepresentationsData:
    """What the worker computes once per context; both projections, so o switches at once."""

    names: list[str]  # "emb", "block 1", …
    without_outliers: Projection
    with_outliers: Projection
    ratios: np.ndarray  # [T] each position's largest norm ÷ its layer's median
    decided: list[int | None]  # per generated token: 0-based block, or None (never)


def compute_representations(net: Any, ids: list[int], first_generated: int) -> RepresentationsData:
    resid = context_residuals(net, ids)  # [L + 1, T, d]
    return RepresentationsData(
        layer_names(resid.shape[0] - 1),
        projection(resid),
        projection(resid, include_outliers=True),
        norm_ratios(resid),
        decided_blocks(net, resid, ids, first_generated),
    )


def excluded_line(pieces: list[str], excluded: list[int], ratios: np.ndarray, outliers: list[int]) -> Text:
    """Which positions are left out and why, or that every position is shown."""
    if excluded:
        named = ", ".join(f"{label_text(pieces[t], 12)} (position {t}, norm {ratios[t]:.0f}× the median)" for t in excluded)
        return Text.assemble(("left out: ", "bold"), named, (" · o puts it back" if len(excluded) == 1 else " · o puts them back", "dim"))
    if outliers:
        return Text.assemble("outliers shown: ", ", ".join(label_text(pieces[t], 12) for t in outliers), (" · o leaves them out", "dim"))
    return Text("every position projected: no norm passes 10× the median", "dim")


def decided_summary(decided: list[int | None], n_layer: int) -> str:
    """How many generated tokens were decided at each block, in one line."""
    if not decided:
        return "no generated tokens yet: n on the main screen generates one"
    counts = [f"B{block + 1} {sum(1 for d in decided if d == block)}" for block in range(n_layer) if block in decided]
    never = sum(1 for d in decided if d is None)
    return " · ".join([*counts, *([f"{NEVER} {never}"] if never else [])])


class RepresentationsScreen(ExplainsPanes, ShowsWorkerErrors, Screen):
    WORKER_ERROR_TITLE = "Representations failed"
    HELP_TITLE = "Representations (V)"
    EXPLANATIONS = {
        "repr-pane": (
            f"Each token's residual vector (before the final norm) at one layer: emb, then after block 1…L. One PCA "
            f"fitted on every layer's vectors at once gives two axes (PC1 →, PC2 ↑) shared by all layers, so a point that "
            f"moves, moved. {POINT} a token at this layer, ⠂ one layer before. PC1, PC2: their share of the variance. "
            f"[ ] layer, space plays. A norm far above the rest (10× the median) would take PC1 alone: left out, o back."
        ),
        "decided-pane": (
            "Over each generated token: the block from which the logit lens (ln_f and the unembedding applied after a "
            f"block), at the position before it, already had this token as its top-1 and kept it to the last block. "
            f"1 = decided early, L = only at the end. {NEVER} never: not the top-1 even after the last block (drawn "
            "below the top at T > 0, forced with 1–9, or chosen with a part knocked out). The prompt: grey, unmarked."
        ),
    }
    BINDINGS = [
        *QUIT_HELP_SAVE,
        *back_keys("V"),
        *key_pair("left_square_bracket", "right_square_bracket", "layer({})", "The layer before", "The next layer", "Layer", "[/]"),
        *key_pair("left", "right", "layer({})", "The layer before", "The next layer"),
        Binding("space", "play", "Play", tooltip="Play the layers from emb to the last block, one every 0.7 s; again: pause"),
        Binding("o", "outliers", "Outliers", tooltip="Put the left-out outliers back into the projection; again: leave them out"),
        Binding("home", "first_layer", "The first layer (emb)", show=False),
        Binding("end", "last_layer", "The last block", show=False),
    ]

    def __init__(
        self, get_net: Callable[[], Any], ids: list[int], pieces: list[str], first_generated: int, shade: bool = False, ablated: tuple = ()
    ) -> None:
        """`get_net()` (called on the worker thread) gives a model with forward(ids, capture=True) and lens(resid);
        `ablated`: the labels of the components the session knocks out (this screen shows the intact model: said so)."""
        super().__init__()
        self.ablated = ablated
        self.get_net = get_net
        self.ids, self.pieces = list(ids), list(pieces)
        self.first_generated = first_generated
        self.shade = shade
        self.computed: RepresentationsData | None = None
        self.shown_layer = 0
        self.include_outliers = False
        self.player: Timer | None = None

    class Computed(Message):
        def __init__(self, ids: list[int], data: RepresentationsData) -> None:
            super().__init__()
            self.ids, self.result = ids, data

    def compose(self) -> ComposeResult:
        with pane(model_title(f"Representations · {len(self.ids)} tokens", self.ablated, ablated=False), "repr-pane", "computing…"):
            yield ProjectionPlot(id="repr-plot")
        yield Static(id="repr-excluded")
        with pane("Where each token was decided", "decided-pane", DECIDED_LEGEND) as strip_pane:
            strip_pane.styles.height, strip_pane.styles.min_height, strip_pane.styles.max_height = "30%", 6, 12  # the plot: the rest
            yield DecidedStrip(id="decided-strip")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        if self.ids:
            self.compute(self.ids, self.first_generated)
        self.redraw()

    @work(thread=True, exclusive=True, exit_on_error=False, group="representations")
    def compute(self, ids: list[int], first_generated: int) -> None:
        data = compute_representations(self.get_net(), ids, first_generated)
        if not get_current_worker().is_cancelled:
            self.post_message(self.Computed(ids, data))

    def on_representations_screen_computed(self, message: Computed) -> None:
        if message.ids == self.ids:
            self.computed = message.result
            self.redraw()

    @property
    def shown(self) -> Projection | None:
        if self.computed is None:
            return None
        return self.computed.with_outliers if self.include_outliers else self.computed.without_outliers

    def redraw(self) -> None:
        if not self.is_mounted:
            return
        plot_pane, shown = self.query_one("#repr-pane"), self.shown
        if shown is None:
            self.query_one("#repr-excluded", Static).update(Text("computing the forward pass…" if self.ids else "No context yet.", "dim"))
            return
        data = self.computed
        coords = shown.coords  # [L + 1, P, 2]
        pieces = [self.pieces[t] for t in shown.positions]
        before = coords[self.shown_layer - 1] if self.shown_layer > 0 else None
        self.query_one(ProjectionPlot).show(coords[self.shown_layer], before, pieces, plot_bounds(coords), self.shade)
        r1, r2 = shown.explained_variance_ratio
        playing = " · playing" if self.player is not None else ""
        title = f"Representations · {data.names[self.shown_layer]} ({self.shown_layer}/{len(data.names) - 1}){playing}"
        plot_pane.border_title = model_title(title, self.ablated, ablated=False)
        plot_pane.border_subtitle = f"PC1 → {r1:.1%} · PC2 ↑ {r2:.1%} of the variance"
        outliers = data.without_outliers.excluded
        self.query_one("#repr-excluded", Static).update(excluded_line(self.pieces, shown.excluded, data.ratios, outliers))
        n_layer = len(data.names) - 1
        self.query_one(DecidedStrip).show(self.pieces, self.first_generated, data.decided, n_layer, self.shade)
        self.query_one("#decided-pane").border_title = f"Where each token was decided · {decided_summary(data.decided, n_layer)}"

    def figures(self) -> dict:
        """What `e` saves here: the projection shown (as `tfund project --json`), the layer shown, the decided blocks."""
        shown = self.shown
        if shown is None:
            return {"data": {"representations": None}}
        report = projection_json(self.pieces, self.computed.names, shown)
        generated = range(self.first_generated, len(self.ids))
        decided = [
            {"position": t, "token": self.pieces[t], "block": None if d is None else d + 1}
            for t, d in zip(generated, self.computed.decided)
        ]
        return {"data": {"representations": {**report, "layer_shown": self.computed.names[self.shown_layer], "decided": decided}}}

    # ---- keys --------------------------------------------------------------------------------
    def n_layers(self) -> int:
        return 0 if self.computed is None else len(self.computed.names)

    def go_to_layer(self, layer: int) -> None:
        if self.n_layers():
            self.shown_layer = max(0, min(self.n_layers() - 1, layer))
            self.redraw()

    def action_layer(self, direction: int) -> None:
        self.stop_playing()
        self.go_to_layer(self.shown_layer + direction)

    def action_first_layer(self) -> None:
        self.stop_playing()
        self.go_to_layer(0)

    def action_last_layer(self) -> None:
        self.stop_playing()
        self.go_to_layer(self.n_layers() - 1)

    def action_play(self) -> None:
        if self.player is not None:
            self.stop_playing()
            self.redraw()
            return
        if not self.n_layers():
            return
        if self.shown_layer == self.n_layers() - 1:
            self.shown_layer = 0  # played to the end before: from the start again
        self.player = self.set_interval(PLAY_INTERVAL_S, self.play_step)
        self.redraw()

    def play_step(self) -> None:
        if self.shown_layer >= self.n_layers() - 1:
            self.stop_playing()
        else:
            self.shown_layer += 1
        self.redraw()

    def stop_playing(self) -> None:
        if self.player is not None:
            self.player.stop()
            self.player = None

    def action_outliers(self) -> None:
        if self.computed is None:
            return
        if not self.computed.without_outliers.excluded:
            self.notify("No outliers here: every position is already projected.", timeout=3)
            return
        self.include_outliers = not self.include_outliers
        self.redraw()
