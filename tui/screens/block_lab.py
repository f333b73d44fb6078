"""The block lab: the seed notebook's random-weight NumPy block stack, every dimension and switch on a key.

Shows the stack's attention, how the representations evolve layer by layer (residual norm, cosine
with the previous layer, cosine between tokens), and the NumPy-vs-torch parity of the loaded model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from typing import TYPE_CHECKING

import numpy as np
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker
from textual_plotext import PlotextPlot

from engine.model.blocklab import BlockLabConfig, BlockLabResult, first_overflow, lab_number, modern_facts, norm_name, run_block_lab
from tui.controls import nudge_lab, toggle_lab
from tui.keys import LAYER_HEAD_BINDINGS, QUIT_HELP_SAVE, LayerHeadKeys, back_keys, key_pair
from tui.messages import BlockLabComputed, ParityComputed
from tui.numbering import block_head_text
from tui.references import angle
from tui.screens.error import ShowsWorkerErrors
from tui.widgets.attention_map import AttentionMap
from tui.widgets.pane import ExplainsPanes, pane
from tui.widgets.parameters import ParametersView

if TYPE_CHECKING:
    from tui.session import Session


ACTIVATION_NAMES = {"relu": "ReLU", "gelu": "GELU", "swiglu": "SwiGLU"}
POSITION_NAMES = {"none": "none", "learned": "learned", "rope": "RoPE"}


def lab_lines(cfg: BlockLabConfig, layer: int, head: int | None) -> list[tuple[str, str]]:
    """Twelve lines of at most 19 cells: at 80×24 with a lesson open the first eleven show (the last, the block
    and head shown, is also the Attention pane's subtitle)."""
    return [
        ("T", str(cfg.T)),
        ("d_model", str(cfg.d_model)),
        ("n_heads", str(cfg.n_heads) if cfg.kv_heads == cfg.n_heads else f"{cfg.n_heads} · KV {cfg.kv_heads}"),
        ("d_ff", f"{cfg.d_ff} · {ACTIVATION_NAMES[cfg.activation]}"),
        ("n_layers", str(cfg.n_layers)),
        ("seed", f"{cfg.seed} · scale {cfg.weight_scale:g}"),
        ("residual", "on" if cfg.residual else "off"),
        ("norm", norm_name(cfg)),
        ("positions", POSITION_NAMES[cfg.positions]),
        ("attention", ("causal" if cfg.causal else "no mask") if cfg.attention else "off"),
        ("changed", "none" if cfg.changed_token is None else f"row {cfg.changed_token} of X"),
        ("block", f"{layer + 1} head {'mean' if head is None else head + 1}"),
    ]


NORM_LOG_FROM = 1e4  # larger norms are drawn as log10: plotext cannot lay out an axis over dozens of orders of magnitude


SERIES_MARKERS = {"norm": "⠤", "layer_cosine": "×", "token_cosine": "•"}  # the chart's three series, told apart without colour


def representations_line(result: BlockLabResult) -> str:
    """The last block's numbers, each after its series' mark in the chart, beside its reference: √d_model for the
    norm (a normed vector's length), the token cosine as an angle. Three lines of at most 26 cells (the pane at 80 columns)."""
    metrics, cfg = result.metrics, result.config
    token_cos = float(metrics["token_cosine"][-1])
    norm = metrics["resid_norm"][-1]
    norm_text = f"{norm:.3g}" if np.isfinite(norm) else "overflow"
    layer_cos = lab_number(float(metrics["layer_cosine"][-1]))
    return (
        f"{SERIES_MARKERS['norm']} norm {norm_text}, √d_model {math.sqrt(cfg.d_model):.3g}\n"
        f"{SERIES_MARKERS['layer_cosine']} cos(l, l-1) {layer_cos}\n"
        f"{SERIES_MARKERS['token_cosine']} token cos {lab_number(token_cos)} = {angle(token_cos)}"
    )


def plot_representations(plt, metrics: dict) -> str:
    """X, then after block 1…L: mean residual norm (left axis, a braille line), layer and token cosines (right
    axis, fixed at -1…1 so that neither lies on the norm; × and • marks), up to the first stream that overflowed.
    Returns the legend for the pane's subtitle, which says so."""
    plt.clear_data()
    plt.clear_figure()
    overflow = first_overflow(metrics)
    n_shown = len(metrics["resid_norm"]) if overflow is None else overflow  # streams with finite figures
    layers = list(range(len(metrics["resid_norm"])))
    norms = np.asarray(metrics["resid_norm"][:n_shown], dtype=float)
    log = bool(n_shown) and norms.max() > NORM_LOG_FROM
    plt.plot(layers[:n_shown], (np.log10(norms) if log else norms).tolist(), marker="braille")
    if n_shown > 1:
        layer_cosine = [float(v) for v in metrics["layer_cosine"][: n_shown - 1]]
        plt.plot(layers[1:n_shown], layer_cosine, yside="right", marker=SERIES_MARKERS["layer_cosine"])
    token_cosine = [float(v) for v in metrics["token_cosine"][:n_shown]]
    plt.plot(layers[:n_shown], token_cosine, yside="right", marker=SERIES_MARKERS["token_cosine"])
    plt.ylim(-1, 1, yside="right")
    ticks = layers if len(layers) <= 12 else layers[:: max(1, len(layers) // 8)]
    plt.xticks(ticks, ["X" if x == 0 else str(x) for x in ticks])
    plt.xlim(0, max(1, layers[-1]))
    legend = f"⠤ {'log₁₀ ' if log else ''}norm ◂ · × • cos ▸"
    return legend if overflow is None else f"overflow after block {overflow} · {legend}"


def parity_text(report: dict | None, error: str | None, model_name: str, exact: bool = True) -> Text:
    """One paragraph: the largest logit difference, the KV-cache difference, greedy agreement, verdict.

    exact=False states the differences against the tolerance instead of printing them (their last
    digits vary between machines; snapshot tests use this).
    """
    text = Text()
    if error:
        text.append(error, style="red")
        return text
    if report is None:
        text.append(f"checking the loaded model ({model_name}): the NumPy engine against torch…", style="dim")
        return text
    tolerance = report["tolerance"]

    def difference(value: float) -> str:
        if exact:
            return f"{value:.1e}"
        return f"≤ {tolerance:.0e}" if value <= tolerance else f"> {tolerance:.0e}"

    greedy = report["greedy_numpy"]
    same = sum(a == b for a, b in zip(greedy, report["greedy_torch"]))
    text.append(
        f"The loaded model ({model_name}), NumPy engine vs torch: max |Δlogit| {difference(report['max_abs_diff'])} (tolerance {tolerance:.0e}) · "
    )
    text.append(f"with KV cache {difference(report['kv_cache_max_abs_diff'])} · greedy {same}/{len(greedy)} tokens equal · ")
    text.append("ok" if report["ok"] else "MISMATCH", style="bold green" if report["ok"] else "bold red")
    return text


class BlockLabScreen(ExplainsPanes, ShowsWorkerErrors, LayerHeadKeys, Screen):
    WORKER_ERROR_TITLE = "Block lab error"
    BINDINGS = [  # no key means something else here than on the main screen (s/S is the seed on both)
        *QUIT_HELP_SAVE,
        *back_keys("b"),
        *key_pair("less_than_sign", "greater_than_sign", "nudge('T', {})", "Fewer input tokens (T, the rows of X)", "More input tokens"),
        *key_pair("l", "L", "nudge('n_layers', {})", "One layer fewer", "One layer more", footer="Layers"),
        *key_pair("d", "D", "nudge('d_model', {})", "Halve d_model (the heads follow so they divide it)", "Double d_model"),
        *key_pair("j", "J", "nudge('n_heads', {})", "Fewer heads", "More heads"),  # h and a open other screens from the main one
        *key_pair("f", "F", "nudge('d_ff', {})", "Halve d_ff", "Double d_ff"),
        *key_pair("s", "S", "nudge('seed', {})", "Previous seed", "Next seed"),
        *key_pair("z", "Z", "nudge('weight_scale', {})", "Smaller random weights", "Larger random weights"),
        Binding("R", "toggle('residual')", "Residual", tooltip="Residual connections on/off"),
        Binding("N", "toggle('layer_norm')", "Norm", tooltip="Layer norm on/off"),
        Binding(
            "o",
            "toggle('pre_ln')",
            "Pre/post",
            show=False,
            tooltip="Layer norm before each sublayer (pre-LN, GPT-2) or after it (post-LN, 2017)",
        ),
        Binding("y", "toggle('activation')", "Feed-forward activation: ReLU → GELU → SwiGLU (gated, Llama's)", show=False),
        Binding("O", "toggle('norm_kind')", "The norm: LayerNorm or RMSNorm (Llama's: no centring)", show=False),
        Binding("U", "toggle('positions')", "Positions: none → learned (GPT-2) → rotary, RoPE (Llama)", show=False),
        Binding(
            "H", "toggle('n_kv_heads')", "Key/value heads: one per head → fewer, each shared by a group of query heads (GQA)", show=False
        ),
        Binding("u", "toggle('causal')", "The causal mask on/off (off: every token sees every token, as in an encoder)", show=False),
        Binding("A", "toggle('attention')", "Attention on/off (off: only the feed-forward networks act)", show=False),
        Binding("I", "toggle('changed_token')", "Flip the middle token's input (a row of X); again: restore", show=False),
        *LAYER_HEAD_BINDINGS,
        Binding("v", "parity", "Verify the loaded model again: NumPy engine vs torch", show=False),
    ]
    HELP_TITLE = "Block lab (b)"
    LESSON_NAME = "block_lab"  # the lessons read lesson_facts() while this screen is shown
    EXPLANATIONS = {
        "lab-config-pane": (
            "The notebook's block, random weights (not the loaded model). < > T, rows of X; d D d_model; j J "
            "heads; f F d_ff; l L blocks; z Z scale. R residual, N norm, o pre/post, A attention, u mask, I flips a "
            "token. Modern: O RMSNorm, U positions, y ReLU/GELU/SwiGLU, H KV heads (lines below: what changes)."
        ),
        "lab-attention-pane": (
            "One block's attention over positions 0…T-1: row = the position attending, column = the one it looks "
            "at. Grey above the diagonal: the causal mask (u removes it). [ ] block, { } head or mean. Near "
            "uniform only at small scale: larger weights (Z) make the softmax peak."
        ),
        "lab-plot-pane": (
            "X, then after block 1…L. ⠤ norm (◂): mean length; √d_model = a normed vector's (trained streams "
            "grow far past it). × cos(l,l-1) (▸, -1…1): with the step before, 1 = same direction. • token cos (▸): "
            "mean cosine between tokens, random ≈ 0, 1 = all alike."
        ),
        "parity-pane": (
            "The NumPy engine written here against torch on the loaded model: max |Δlogit| is the largest logit "
            "difference, with KV cache the same when each step reuses the keys and values kept from earlier steps, "
            "greedy n/m the greedy tokens both choose alike. v checks again."
        ),
    }

    def __init__(self, session: Session, config: BlockLabConfig | None = None) -> None:
        """The parity figure is the session's: asked of it, it comes back as a ParityComputed message."""
        super().__init__()
        self.session = session
        self.model_name = session.model_name
        self.parity = session.parity  # (report, error) known so far; (None, None) while unknown
        self.deterministic = session.options.deterministic  # differences against the tolerance, not their digits
        self.lab_config = config or BlockLabConfig()  # the settings asked for; results follow
        self.result = None  # engine.model.blocklab.BlockLabResult of lab_config, once computed

    def compose(self) -> ComposeResult:
        with Horizontal(id="lab-top"):
            with pane("Block lab", "lab-config-pane"):
                yield ParametersView(id="lab-config")
            with pane("Attention", "lab-attention-pane"):
                yield AttentionMap(id="lab-attention")
            with pane("Representations", "lab-plot-pane", "⠤ norm ◂ · × • cos ▸"):
                yield PlotextPlot(id="lab-plot")
                yield Static(id="lab-numbers")
        yield Static(id="lab-modern")  # what the modern switches change (engine.model.blocklab.modern_facts); hidden when none is on
        with pane("Parity: the loaded model, not this random block", "parity-pane", "v checks again"):
            yield Static(id="parity")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.compute(self.lab_config)
        self.show_parity(*self.parity)
        if self.parity == (None, None):
            self.session.request_parity(self)

    @work(thread=True, exclusive=True, exit_on_error=False, group="blocklab")
    def compute(self, config: BlockLabConfig) -> None:
        result = run_block_lab(replace(config))
        if not get_current_worker().is_cancelled:
            self.post_message(BlockLabComputed(result))

    def on_block_lab_computed(self, message: BlockLabComputed) -> None:
        if message.result.config == self.lab_config:
            self.result = message.result
            self.redraw()

    def redraw(self) -> None:
        self.query_one("#lab-config", ParametersView).show(lab_lines(self.lab_config, self.shown_layer, self.shown_head))
        result = self.result
        behind = result is None or result.config != self.lab_config  # the figures are not yet those of the settings shown
        self.query_one("#lab-config-pane").border_subtitle = "computing…" if behind else ""
        if result is None:
            return
        n_layers, n_heads = result.attention.shape[:2]
        self.shown_layer = min(self.shown_layer, n_layers - 1)
        if self.shown_head is not None and self.shown_head >= n_heads:
            self.shown_head = None
        labels = [str(i) for i in range(result.config.T)]  # input positions
        attention_map = self.query_one(AttentionMap)
        attention_map.causal = result.config.causal  # without the mask the upper triangle is drawn, not greyed
        attention_map.show(self.shown_grid(), labels, None, self.app.shade)
        self.query_one("#lab-attention-pane").border_subtitle = block_head_text(self.shown_layer, self.shown_head)
        plot = self.query_one(PlotextPlot)
        self.query_one("#lab-plot-pane").border_subtitle = plot_representations(plot.plt, result.metrics)
        plot.refresh()
        self.query_one("#lab-numbers", Static).update(representations_line(result))
        modern = self.query_one("#lab-modern", Static)
        facts = modern_facts(result)
        modern.display = bool(facts)
        modern.update("\n".join(facts))
        self.query_one("#lab-config", ParametersView).show(lab_lines(self.lab_config, self.shown_layer, self.shown_head))

    def shown_grid(self) -> np.ndarray:  # -> [T, T] the chosen layer's head, or the mean of its heads
        layer = self.result.attention[self.shown_layer]  # [H, T, T]
        return layer.mean(axis=0) if self.shown_head is None else layer[self.shown_head]

    def figures(self) -> dict:
        """What `e` saves here: the attention shown, the settings, the per-layer metrics and the parity report."""
        result = self.result
        figures: dict = {"data": {"block-lab": {"settings": asdict(self.lab_config), "parity": self.parity[0]}}}
        if result is not None:
            figures.update(
                attention=self.shown_grid(),
                tokens=[str(i) for i in range(result.config.T)],
                layer=self.shown_layer,
                head=self.shown_head,
            )
            figures["data"]["block-lab"]["metrics"] = {name: np.asarray(values).tolist() for name, values in result.metrics.items()}
        return figures

    def lesson_facts(self) -> dict:
        """What the lessons read here: the block's settings asked for (tui/lessons.py)."""
        return {"config": self.lab_config}

    def on_parity_computed(self, message: ParityComputed) -> None:
        self.show_parity(message.report, message.error)

    def show_parity(self, report: dict | None, error: str | None) -> None:
        self.parity = (report, error)
        self.query_one("#parity", Static).update(parity_text(report, error, self.model_name, exact=not self.deterministic))

    # ---- keys --------------------------------------------------------------------------------
    def apply(self, config: BlockLabConfig) -> None:
        if config != self.lab_config:
            self.lab_config = config
            self.redraw()
            self.compute(config)

    def action_nudge(self, field: str, direction: int) -> None:
        self.apply(nudge_lab(self.lab_config, field, direction))

    def action_toggle(self, switch: str) -> None:
        if switch == "pre_ln" and not self.lab_config.layer_norm:
            self.notify("The layer norm is off, so o changes nothing here until N turns it on.")
        self.apply(toggle_lab(self.lab_config, switch))

    def layer_head_counts(self) -> tuple[int, int]:
        return self.lab_config.n_layers, self.lab_config.n_heads

    def action_parity(self) -> None:
        self.notify(f"Checking {self.model_name} again: the NumPy engine against torch…", timeout=3)
        self.show_parity(None, None)
        self.session.request_parity(self, recheck=True)
