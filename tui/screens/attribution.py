"""Direct logit attribution of the next token: how much the embedding, each attention layer (and its heads)
and each MLP add to a candidate's logit, as a signed bar chart whose parts sum to the logit.

`d` shows the logit difference instead: the candidate's parts minus those of the likeliest other candidate
(the runner-up, for the top one). Most of a logit is shared by every plausible candidate; the difference
keeps only what separates the two.

Definitions: engine.model.interventions (each part through ln_f with its scale frozen at the full
residual's value, dotted with the candidate's unembedding; ln_f's bias is the one term left). The
forward runs on a thread worker with an Inspector (NumPy engine) over the context's token ids; every
candidate's attribution comes from that one run, so ↑/↓ switch at once.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from engine.events import Candidate
from engine.model.interventions import Attribution
from engine.views.pieces import visible
from tui.captions import model_title
from tui.keys import QUIT_HELP_SAVE, back_keys, key_pair
from tui.messages import AttributionComputed
from tui.numbering import block_label, kv_group
from tui.screens.error import ShowsWorkerErrors
from tui.widgets.pane import ExplainsPanes, pane

SUM_TOLERANCE = 1e-4  # |parts + bias - logit| above this is flagged
LABEL_WIDTH = 11
VALUE_WIDTH = 9
POSITIVE, NEGATIVE = "green", "red"


def difference(a: Attribution, b: Attribution) -> Attribution:  # a's decomposition minus b's, part by part
    """What separates candidate a from candidate b: their parts subtracted (the sum is a's logit minus b's)."""
    return Attribution(
        token_id=a.token_id,
        logit=a.logit - b.logit,
        embed=a.embed - b.embed,
        heads=a.heads - b.heads,  # [L, H]
        attn_bias=a.attn_bias - b.attn_bias,  # [L]
        mlp=a.mlp - b.mlp,  # [L]
        bias=a.bias - b.bias,
    )


def rival(chosen: int) -> int:
    """The candidate a difference is taken against: the likeliest other one (the runner-up, for the top one)."""
    return 1 if chosen == 0 else 0


def chart_rows(attribution: Attribution, expanded: set[int], n_kv_heads: int | None = None) -> list[tuple[str, float, int | None]]:
    """(label, value, layer or None) per bar, in the order the stream adds them; expanded layers list their heads
    (with their KV head when grouped: "H5·kv2")."""
    n_head = attribution.heads.shape[1]
    rows: list[tuple[str, float, int | None]] = [("embed", attribution.embed, None)]
    for layer in range(attribution.heads.shape[0]):
        mark = "▾" if layer in expanded else "▸"
        rows.append((f"{mark}{block_label(layer)}.attn", float(attribution.attn[layer]), layer))
        if layer in expanded:
            for head, value in enumerate(attribution.heads[layer]):
                group = kv_group(head, n_head, n_kv_heads)
                rows.append((f"   H{head + 1}" + ("" if group is None else f"·kv{group + 1}"), float(value), layer))
            rows.append(("   b_O", float(attribution.attn_bias[layer]), layer))
        rows.append((f" {block_label(layer)}.mlp", float(attribution.mlp[layer]), layer))
    rows.append(("ln_f bias", attribution.bias, None))
    return rows


def signed_bar(value: float, scale: float, half: int) -> tuple[str, str]:
    """(left, right) halves around the zero line, `half` cells each: negative fills leftwards, positive rightwards."""
    cells = 0.0 if scale <= 0 else min(1.0, abs(value) / scale) * half
    full, part = int(cells), cells - int(cells) >= 0.5
    if value >= 0:
        return " " * half, ("█" * full + ("▌" if part else "")).ljust(half)
    return ("▐" if part else "").rjust(half - full) + "█" * full, " " * half


def chart_text(attribution: Attribution, expanded: set[int], selected_layer: int, width: int, n_kv_heads: int | None = None) -> Text:
    """The bar chart: label, bar left of │ when negative and right of it when positive, the signed value."""
    rows = chart_rows(attribution, expanded, n_kv_heads)
    half = max(2, (width - LABEL_WIDTH - VALUE_WIDTH - 2) // 2)
    scale = max((abs(value) for _, value, _ in rows), default=0.0)
    text = Text(no_wrap=True, overflow="crop")
    for i, (label, value, layer) in enumerate(rows):
        left, right = signed_bar(value, scale, half)
        chosen = layer == selected_layer and label.lstrip(" ▸▾").startswith(f"{block_label(layer)}.attn")
        text.append(label[:LABEL_WIDTH].ljust(LABEL_WIDTH), "bold reverse" if chosen else "")
        text.append(left, NEGATIVE)
        text.append("│", "dim")
        text.append(right, POSITIVE)
        text.append(f"{value:+{VALUE_WIDTH}.3f}")
        if i < len(rows) - 1:
            text.append("\n")
    return text


def sum_line(attribution: Attribution, versus: str | None = None) -> Text:
    """The check: the parts plus ln_f's bias against the model's logit (or the two logits' difference)."""
    total = attribution.total()
    ok = abs(total - attribution.logit) <= SUM_TOLERANCE
    logit = "logit" if versus is None else f"Δ logit vs {versus}"
    text = Text(f"embed + attn + mlp + bias = {total:.4f} · {logit} {attribution.logit:.4f} · ")
    text.append("sum ok" if ok else f"MISMATCH ({total - attribution.logit:+.1e})", "bold green" if ok else "bold red")
    return text


def candidate_line(candidates: list[Candidate], chosen: int, versus: int | None = None) -> Text:
    candidate = candidates[chosen]
    text = Text(f"candidate {chosen + 1}/{len(candidates)} ", "dim")
    text.append(repr(visible(candidate.text)), "bold")
    text.append(f" p {candidate.p_raw:.1%}" if candidate.p_raw >= 1e-3 else " p <0.1%", "dim")
    if versus is not None:
        text.append(" · Δ vs ", "dim")
        text.append(repr(visible(candidates[versus].text)), "bold")
        text.append(" (d: one logit)", "dim")
    else:
        text.append(" · d: minus the likeliest other", "dim")
    return text


class ChartScroll(VerticalScroll, can_focus=False):
    """Scrolled by the screen's page keys: the arrows pick candidates, not lines."""


class AttributionScreen(ExplainsPanes, ShowsWorkerErrors, Screen):
    WORKER_ERROR_TITLE = "Attribution failed"
    HELP_TITLE = "Attribution (a)"
    EXPLANATIONS = {
        "attr-pane": (
            "Direct logit attribution: the candidate's logit split into what each part writes into the residual "
            "stream, read through ln_f (its scale frozen) and the token's unembedding. embed: the token's (GPT-2 adds "
            "its position's); B1.attn, B1.mlp: block 1's attention and MLP (⏎: its heads and b_O); ln_f bias: ln_f's "
            "bias · the unembedding (0 in Llamas: no biases). Direct effects only. d: Δ vs another candidate."
        ),
    }
    BINDINGS = [
        *QUIT_HELP_SAVE,
        *back_keys("a"),
        *key_pair("up", "down", "candidate({})", "The previous candidate", "The next candidate (by probability)", "Candidate", "↓/↑"),
        Binding("enter", "expand", "Heads", key_display="⏎", tooltip="Break the selected layer's attention into its heads (again: fold)"),
        *key_pair(
            "left_square_bracket",
            "right_square_bracket",
            "layer({})",
            "Select the previous block",
            "Select the next block (⏎ shows its heads)",
            "Block",
            "[/]",
        ),
        Binding("circumflex_accent", "layer_end(-1)", "Select the first block", key_display="^", show=False),
        Binding("dollar_sign", "layer_end(1)", "Select the last block", key_display="$", show=False),
        Binding("x", "expand_all", "Every layer's heads, or none", show=False),
        Binding("d", "difference", "Logit difference: minus the likeliest other candidate (again: one logit)", show=False),
        *key_pair("pageup", "pagedown", "scroll({})", "Scroll the chart up", "Scroll the chart down"),
    ]

    def __init__(self, session: Any, ids: list[int], candidates: list[Candidate], chosen: int = 0) -> None:
        """`session` (tui.session.Session) gives the loaded model's engine.runtime.interventions.Inspector, on the worker thread."""
        super().__init__()
        self.session = session
        self.ids = list(ids)
        self.candidates = list(candidates)
        self.chosen = min(chosen, max(len(self.candidates) - 1, 0))
        self.ablations, self.mode = session.ablations, session.ablation_mode  # the model the candidates were drawn from
        self.key = (tuple(self.ids), tuple(c.token_id for c in self.candidates))
        self.attributions: list[Attribution] | None = None
        self.expanded: set[int] = set()
        self.selected_layer = 0
        self.differences = False  # d: the chosen candidate's parts minus the likeliest other's
        info = getattr(session, "model_info", None)
        self.n_kv_heads = info.n_kv_heads if info is not None else None  # grouped-query attention: head rows name their KV head

    def compose(self) -> ComposeResult:
        yield Static(id="attr-candidate")
        title = model_title(f"Direct logit attribution · {len(self.ids)} tokens", tuple(a.label for a in self.ablations), ablated=True)
        with pane(title, "attr-pane", "computing…"):
            with ChartScroll(id="attr-scroll"):
                yield Static(id="attr-chart")
        yield Static(id="attr-sum")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        if self.candidates and self.ids:
            self.compute(self.ids, [c.token_id for c in self.candidates], self.key, self.ablations, self.mode)
        self.redraw()

    def on_resize(self) -> None:
        self.call_after_refresh(self.redraw)

    @work(thread=True, exclusive=True, exit_on_error=False, group="attribution")
    def compute(self, ids: list[int], token_ids: list[int], key: tuple, ablations: tuple, mode: str) -> None:
        """Every candidate's attribution from one forward of the model they were drawn from (with `ablations`)."""
        inspector = self.session.inspector()
        run = inspector.run(ids, ablations, mode)
        attributions = [inspector.attribution(run, token_id) for token_id in token_ids]
        if not get_current_worker().is_cancelled:
            self.post_message(AttributionComputed(key, attributions))

    def on_attribution_computed(self, message: AttributionComputed) -> None:
        if message.key == self.key:
            self.attributions = message.result
            self.redraw()

    @property
    def versus(self) -> int | None:
        """The candidate the chart is taken against (d), or None for the chosen candidate's own logit."""
        return rival(self.chosen) if self.differences and len(self.candidates) > 1 else None

    @property
    def attribution(self) -> Attribution | None:
        """The chosen candidate's attribution, or its difference from the `versus` candidate's."""
        if self.attributions is None:
            return None
        own = self.attributions[self.chosen]
        return own if self.versus is None else difference(own, self.attributions[self.versus])

    def redraw(self) -> None:
        if not self.is_mounted:
            return
        if not self.candidates:
            self.query_one("#attr-candidate", Static).update("No candidates yet: nothing to attribute.")
            return
        versus = self.versus
        self.query_one("#attr-candidate", Static).update(candidate_line(self.candidates, self.chosen, versus))
        attribution = self.attribution
        if attribution is None:
            self.query_one("#attr-chart", Static).update(Text("computing the forward pass…", "dim"))
            return
        width = self.query_one("#attr-scroll").size.width or self.size.width - 4
        chart = chart_text(attribution, self.expanded, self.selected_layer, width - 1, self.n_kv_heads)
        self.query_one("#attr-chart", Static).update(chart)
        name = repr(visible(self.candidates[self.chosen].text))
        other = None if versus is None else repr(visible(self.candidates[versus].text))
        what = f"logit of {name}" if other is None else f"{name} minus {other}"
        block = f"block {self.selected_layer + 1}/{self.n_layer()}"
        fold = "folds" if self.selected_layer in self.expanded else "heads of"
        self.query_one("#attr-pane").border_subtitle = f"{what} · ⏎ {fold} {block}"
        self.query_one("#attr-sum", Static).update(sum_line(attribution, other))

    def figures(self) -> dict:
        """What `e` saves here: the shown candidate's attribution, as `tfund inspect --json` writes it; with d, the
        difference from `versus` (the logit and every part are then differences)."""
        attribution = self.attribution
        if attribution is None:
            return {"data": {"attribution": None}}
        candidate = self.candidates[self.chosen]
        data = {
            "token": candidate.text,
            "token_id": attribution.token_id,
            "logit": attribution.logit,
            "components": attribution.components(),
            "bias": attribution.bias,
            "sum": attribution.total(),
            "context_ids": self.ids,
            "versus": None if self.versus is None else self.candidates[self.versus].text,
            "ablated": [a.label for a in self.ablations],
            "ablation_mode": self.mode,
        }
        return {"data": {"attribution": data}}

    # ---- keys --------------------------------------------------------------------------------
    def n_layer(self) -> int:
        return 0 if self.attribution is None else self.attribution.heads.shape[0]

    def action_candidate(self, direction: int) -> None:
        if self.candidates:
            self.chosen = max(0, min(len(self.candidates) - 1, self.chosen + direction))
            self.redraw()

    def action_difference(self) -> None:
        self.differences = not self.differences
        self.redraw()

    def action_layer(self, direction: int) -> None:
        if self.n_layer():
            self.selected_layer = (self.selected_layer + direction) % self.n_layer()
            self.redraw()
            self.scroll_to_layer()

    def action_layer_end(self, direction: int) -> None:
        """^ the first block, $ the last."""
        if self.n_layer():
            self.selected_layer = 0 if direction < 0 else self.n_layer() - 1
            self.redraw()
            self.scroll_to_layer()

    def action_expand(self) -> None:
        if self.n_layer():
            self.expanded ^= {self.selected_layer}
            self.redraw()
            self.scroll_to_layer()

    def action_expand_all(self) -> None:
        if self.n_layer():
            self.expanded = set() if self.expanded else set(range(self.n_layer()))
            self.redraw()

    def scroll_to_layer(self) -> None:
        rows = chart_rows(self.attribution, self.expanded, self.n_kv_heads)
        y = next(i for i, (_, _, layer) in enumerate(rows) if layer == self.selected_layer)
        self.query_one(ChartScroll).scroll_to(y=max(0, y - 2), animate=False)

    def action_scroll(self, direction: int) -> None:
        scroll = self.query_one(ChartScroll)
        scroll.scroll_to(y=scroll.scroll_y + direction * max(1, scroll.size.height - 1), animate=False)
