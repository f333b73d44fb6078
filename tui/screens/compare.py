"""Compare: two samplers side by side on one prompt, with per-step KL(A‖B) and top-1 agreement.

Model A is the app's loaded model. B starts as the same model at another temperature (B_HOT, or
B_COOL when A already runs that hot), so "one model at two temperatures" needs no loading. The
model-B input loads another model (toy, a local directory, a cached hub name) in a thread; with a
different vocabulary engine.views.compare compares the two on candidate text instead of token ids.

Shared context (the default): A samples and B takes A's token, so both read the same text and each
step compares two predictions for the same context. `f` switches to independent texts.

Threads: the screen's own engine controller (tui/controller.py) runs every sampler call on its
thread, through tui.handlers.CompareHandler; results come back as CompareProgress messages.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import numpy as np
from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from engine.events import SamplingConfig, counted
from engine.views.compare import CompareStep
from engine.views.pieces import visible
from tui.commands import CompareSettings, LoadModelB, Preview, Reset, Run, Step
from tui.controller import CommandDone, EngineController
from tui.controls import nudge_temperature
from tui.handlers import CompareHandler, Side
from tui.heatmap import head_grid
from tui.keys import LAYER_HEAD_BINDINGS, QUIT_HELP_SAVE, LayerHeadKeys, key_pair
from tui.messages import CompareModelLoaded, CompareProgress, EngineFailed, EngineNote
from tui.numbering import block_head_text
from tui.pieces import label_text
from tui.references import kl_word
from tui.widgets.attention_map import AttentionMap
from tui.widgets.candidates import CandidatesView
from tui.widgets.edit_line import EditLine
from tui.widgets.pane import ExplainsPanes, pane

B_HOT = 1.5  # B's temperature when A runs cooler than this
B_COOL = 0.7  # B's temperature when A already runs at B_HOT or hotter
FOLLOW_TEXT = {
    "a": "shared context: A samples, B takes A's token",
    None: "independent: each samples its own text",
}


CANDIDATE_COLUMNS = "token · p at T=1 │ after T·k·p"  # above each side's candidates


def default_b_temperature(temperature_a: float) -> float:
    """B runs hotter than A (B_HOT), or cooler (B_COOL) when A is already at B_HOT or above."""
    return B_HOT if temperature_a < B_HOT else B_COOL


def settings_line(config: SamplingConfig, width: int) -> str:
    """The side's sampling settings in one line of at most `width` cells: the seed goes first, then the words."""
    top_k = config.top_k or "off"
    full = f"temp {config.temperature:.2f} · top-k {top_k} · top-p {config.top_p:.2f}"
    for line in (f"{full} · seed {config.seed}", full, f"T {config.temperature:.2f} · k {top_k} · p {config.top_p:.2f}"):
        if len(line) <= width:
            return line
    return line


def shown_layer_head(side: Side, layer: int, head: int | None) -> tuple[int, int | None]:
    """The screen's layer/head choice clamped to this side's model (A and B may differ in size)."""
    return min(layer, side.n_layer - 1), None if head is None else min(head, side.n_head - 1)


def summary_line(steps: list[CompareStep]) -> str:
    if not steps:
        return "no steps yet · n steps both, g runs"
    kls = [st.kl for st in steps]
    agree = sum(st.top1_agree for st in steps)
    return (
        f"{counted(len(steps), 'step')} · mean KL(A‖B) {np.mean(kls):.4f} nats ({kl_word(float(np.mean(kls)))}) · "
        f"top-1 agreement {agree}/{len(steps)} ({100 * agree / len(steps):.0f}%)"
    )


def step_cell(step: CompareStep) -> str:
    """`#index A's token KL ✓/✗` (✓: A and B put their maximum on the same token)."""
    return f"#{step.index} {label_text(step.text_a, 8)} {step.kl:.3f}{'✓' if step.top1_agree else '✗'}"


def step_lines(steps: list[CompareStep], width: int, lines: int) -> Text:
    """The newest steps that fit `lines` lines of `width` cells, oldest first; disagreements in yellow."""
    rows: list[list[CompareStep]] = [[]]  # filled newest first
    used = 0
    for step in reversed(steps):
        needed = cell_len(step_cell(step)) + 2
        if rows[-1] and used + needed > width:
            if len(rows) == lines:
                break
            rows.append([])
            used = 0
        rows[-1].append(step)
        used += needed
    text = Text(no_wrap=True, overflow="crop")
    for n, row in enumerate(reversed(rows)):
        text.append("\n" if n else "")
        for i, step in enumerate(reversed(row)):
            text.append(("  " if i else "") + step_cell(step), style="" if step.top1_agree else "yellow")
    return text


class CompareScreen(ExplainsPanes, LayerHeadKeys, Screen):
    HELP_TITLE = "Compare (c)"
    LESSON_NAME = "compare"  # the lessons read lesson_facts() while this screen is shown
    AUTO_FOCUS = ""  # nothing focused: the keys act until `i` focuses the model-B input
    EXPLANATIONS = {
        "side-a": (
            "Model A: the main screen's model and settings (t/T its temperature). Its text, its next-token candidates "
            "(p at T=1 │ after T·k·p, as on the main screen) and its attention (rows attend to columns; [ ] block, "
            "{ } head)."
        ),
        "side-b": (
            "Model B: the same model at another temperature (y/Y), or another model: i types its name (toy, smollm2, a "
            "folder), enter loads it; u rounds B's matrices to Q8_0 … Q4_0. Shared context (f): B reads A's tokens, so "
            "each step compares two guesses for the same text."
        ),
        "cmp-strip": (
            "Per step: KL(A‖B) = Σ p_A ln(p_A/p_B) over the distributions after T·k·p, in nats: 0 the same, <0.01 "
            "negligible, ~0.1 noticeable, >1 very different; not symmetric; a token one side cuts is floored, not "
            "infinite. ✓ both tops agree, ✗ (yellow) not: one model at two temperatures always agrees. The first "
            "line averages them."
        ),
    }
    BINDINGS = [
        *QUIT_HELP_SAVE,
        Binding("escape", "back", "Back", show=False, tooltip="Back to generation (from the model-B input: leave it)"),
        Binding("n", "step", "Step", tooltip="Step A and B one token"),
        Binding("space", "step", "Step A and B one token", show=False),
        Binding("g", "run_pause", "Run", tooltip="Run both: up to max new tokens more steps (again: pause)"),
        *key_pair("t", "T", "temperature('a', {})", "Temperature of A down 0.1 (0 = greedy)", "Temperature of A up", footer="A temp"),
        *key_pair("y", "Y", "temperature('b', {})", "Temperature of B down 0.1 (0 = greedy)", "Temperature of B up", footer="B temp"),
        *LAYER_HEAD_BINDINGS,
        Binding("f", "follow", "Shared context (B takes A's token) or independent texts; resets", show=False),
        Binding("r", "reset", "Reset both to the prompt (generators re-seeded)", show=False),
        Binding(
            "u",
            "quantize_b",
            "Quantize B: its matrices rounded to Q8_0, Q5_1, Q5_0, Q4_1, Q4_0, then full precision again (llama.cpp's types)",
            show=False,
        ),
        Binding(
            "i",
            "edit_model_b",
            "Model B",
            show=False,
            tooltip="Type another model for B (toy, a local dir, a cached hub name); enter loads it",
        ),
    ]

    def __init__(
        self,
        model: Any,
        prompt: str,
        config: SamplingConfig,
        shade: bool,
        allow_pickle: bool = False,
        temperature_b: float | None = None,
        model_b: str | None = None,
        quantize_b: str | None = None,
    ) -> None:
        """`model`: the app's engine.runtime.loading.LoadedModel (A, and B until another is loaded).

        temperature_b: B's starting temperature (default: default_b_temperature of A's); model_b: another model
        for B to start with (a name for load_model); quantize_b: B's matrices rounded through this type.
        """
        super().__init__()
        self.model_a = model
        self.model_b_name = model_b or model.name  # as asked for (the loaded B may be it quantized)
        self.quantize_b = quantize_b  # the type B's matrices are rounded through, or None (full precision)
        self.prompt = prompt
        self.allow_pickle = allow_pickle  # model B may be read from pickle weights the user trusts
        tb = default_b_temperature(config.temperature) if temperature_b is None else temperature_b
        self.settings = CompareSettings(replace(config), replace(config, temperature=tb))  # what the next step uses
        self.shade = shade
        self.side_a: Side | None = None
        self.side_b: Side | None = None
        self.steps: list[CompareStep] = []
        self.mode = "vocab"
        self.status = "building both samplers…"
        self.engine = EngineController(self.post_message, CompareHandler(model), self.notify)

    def compose(self) -> ComposeResult:
        with Horizontal(id="cmp-columns"):
            for side in ("a", "b"):
                with pane(side.upper(), f"side-{side}", classes="box cmp-side"):
                    if side == "a":
                        yield Static(f"model A › {self.model_a.name} (the main screen's)", id="model-a", classes="cmp-settings")
                    else:
                        with Horizontal(classes="cmp-model-row"):
                            yield Static("model B ›", classes="cmp-label")
                            yield EditLine(
                                self.model_b_name, placeholder="toy, a local dir, a cached hub name (i edits, enter loads)", id="model-b"
                            )
                    yield Static(id=f"settings-{side}", classes="cmp-settings")
                    with VerticalScroll(classes="cmp-text-box", can_focus=False):
                        yield Static(id=f"text-{side}")
                    yield Static(CANDIDATE_COLUMNS, classes="cmp-settings")
                    yield CandidatesView(id=f"candidates-{side}", classes="cmp-candidates")
                    yield AttentionMap(id=f"attention-{side}", classes="cmp-attention")
        with pane("KL(A‖B) and top-1 agreement per step", "cmp-strip", classes="box"):
            yield Static(id="cmp-summary")
            yield Static(id="cmp-steps")
        yield Static(id="cmp-status")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.load_b(self.model_b_name)
        self.redraw()

    def load_b(self, name: str) -> bool:
        """(Re)build both samplers with B on `name` (A's model: shared), quantized as `quantize_b` says."""
        other = None if name == self.model_a.name else name
        return self.engine.send(LoadModelB(other, self.allow_pickle, self.prompt, self.settings, self.quantize_b))

    def on_resize(self) -> None:
        self.call_after_refresh(self.redraw)  # the settings lines fit the new width

    def on_unmount(self) -> None:
        self.engine.close()  # leaving the screen ends a run before its next step

    @property
    def follow(self) -> str | None:
        return self.settings.follow

    def lesson_facts(self) -> dict:
        """What the lessons read here: both sides' temperatures and the steps so far (tui/lessons.py)."""
        models = (self.side_a.model_name if self.side_a else None, self.side_b.model_name if self.side_b else None)
        return {
            "temperatures": (self.settings.a.temperature, self.settings.b.temperature),
            "steps": self.steps,
            "models": models,  # as loaded: ("toy", "toy at Q4_0"), ("toy", "smollm2")
            "mode": self.mode,  # "vocab" (same vocabulary) or "text"
        }

    def figures(self) -> dict:
        """What `e` saves here: both sides' settings, text and candidates, and the per-step KL strip."""

        def side(settings: SamplingConfig, shown: Side | None) -> dict:
            candidates = [] if shown is None else [c._asdict() for c in shown.candidates]
            text = "" if shown is None else shown.prompt + shown.generated
            return {"model": shown.model_name if shown else None, "settings": asdict(settings), "text": text, "candidates": candidates}

        steps = [
            {"index": st.index, "kl": st.kl, "top1_agree": st.top1_agree, "text_a": st.text_a, "text_b": st.text_b} for st in self.steps
        ]
        compare = {
            "a": side(self.settings.a, self.side_a),
            "b": side(self.settings.b, self.side_b),
            "quantize_b": self.quantize_b,
            "follow": self.follow,
            "steps": steps,
        }
        return {"data": {"compare": compare}}

    # ---- results from the engine thread --------------------------------------------------------
    def on_compare_progress(self, message: CompareProgress) -> None:
        self.side_a, self.side_b, self.mode = message.a, message.b, message.mode
        if message.restart:
            self.steps = []
        self.steps.extend(message.steps)
        self.status = self.progress_status()
        self.redraw()

    def progress_status(self) -> str:
        if self.engine.pausing:
            return "pausing…"
        if self.engine.running:
            return f"running · {counted(len(self.steps), 'step')} · g pauses"
        return f"ready · {counted(len(self.steps), 'step')}"

    def on_engine_note(self, message: EngineNote) -> None:
        self.set_status(message.text)

    def on_compare_model_loaded(self, message: CompareModelLoaded) -> None:
        self.model_b_name = message.source
        self.query_one("#model-b", Input).value = message.source
        vocabulary = "same vocabulary" if self.mode == "vocab" else "another vocabulary: compared on text"
        self.set_status(" · ".join(part for part in (f"model B is {message.model.name}", message.note, vocabulary) if part))

    def on_command_done(self, message: CommandDone) -> None:
        self.engine.done(message)
        if self.status.startswith(("running", "pausing")):
            self.set_status(self.progress_status())

    def on_engine_failed(self, message: EngineFailed) -> None:
        error = message.error
        self.set_status(f"The compare engine stopped: {type(error).__name__}: {error}")

    # ---- drawing -------------------------------------------------------------------------------
    def set_status(self, text: str) -> None:
        self.status = text
        if self.is_mounted:
            self.query_one("#cmp-status", Static).update(text)

    def redraw(self) -> None:
        if not self.is_mounted:
            return
        for name, side, config in (("a", self.side_a, self.settings.a), ("b", self.side_b, self.settings.b)):
            line = self.query_one(f"#settings-{name}", Static)
            line.update(settings_line(config, line.size.width or 80))
            if side is not None:
                self.draw_side(name, side)
        self.query_one("#cmp-strip").border_subtitle = FOLLOW_TEXT[self.follow] + (
            " · compared on candidate text (other vocabulary)" if self.mode == "text" else ""
        )
        self.query_one("#cmp-summary", Static).update(summary_line(self.steps))
        steps_box = self.query_one("#cmp-steps", Static)
        steps_box.update(step_lines(self.steps, max(steps_box.size.width, 20), 2))
        self.query_one("#cmp-status", Static).update(self.status)

    def draw_side(self, name: str, side: Side) -> None:
        box = self.query_one(f"#side-{name}")
        box.border_title = f"{name.upper()} · {side.model_name}"
        text = Text(visible(side.prompt, newlines=True), style="dim")
        text.append(visible(side.generated, newlines=True), style="bold")
        self.query_one(f"#text-{name}", Static).update(text)
        self.query_one(f"#text-{name}", Static).parent.scroll_end(animate=False)
        self.query_one(f"#candidates-{name}", CandidatesView).show(side.candidates)
        layer, head = shown_layer_head(side, self.shown_layer, self.shown_head)
        grid = head_grid(side.rows, layer, head)  # [T, T]
        self.query_one(f"#attention-{name}", AttentionMap).show(grid, side.pieces, len(side.pieces) - 1, self.shade)
        box.border_subtitle = f"attention: {block_head_text(layer, head)}"

    # ---- keys ----------------------------------------------------------------------------------
    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            self.set_focus(None)
        else:
            self.app.pop_screen()

    def action_step(self) -> None:
        self.engine.send(Step(self.settings))

    def action_run_pause(self) -> None:
        self.engine.toggle_run(Run(self.settings, self.settings.a.max_new_tokens))
        self.set_status(self.progress_status())

    def action_temperature(self, side: str, direction: int) -> None:
        config = getattr(self.settings, side)
        new = replace(self.settings, **{side: replace(config, temperature=nudge_temperature(config.temperature, direction))})
        if new != self.settings and self.engine.send(Preview(new)):
            self.settings = new
            self.redraw()

    def layer_head_counts(self) -> tuple[int, int]:
        sides = [s for s in (self.side_a, self.side_b) if s is not None]
        return max((s.n_layer for s in sides), default=1), max((s.n_head for s in sides), default=1)

    def action_follow(self) -> None:
        new = replace(self.settings, follow=None if self.follow == "a" else "a")
        if self.engine.send(Reset(new)):
            self.settings = new

    def action_reset(self) -> None:
        self.engine.send(Reset(self.settings))

    def action_edit_model_b(self) -> None:
        self.query_one("#model-b", EditLine).edit()

    def action_quantize_b(self) -> None:
        """u: B's matrices through the next type (Q8_0 → … → Q4_0 → full precision); a type refused says why."""
        from engine.model.quantization import QUANT_TYPES

        cycle = [None, *QUANT_TYPES]
        self.quantize_b = cycle[(cycle.index(self.quantize_b) + 1) % len(cycle)]
        if self.load_b(self.model_b_name):
            self.set_status(f"quantizing B to {self.quantize_b.upper()}…" if self.quantize_b else "B back to full precision…")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        name = event.value.strip()
        self.set_focus(None)
        if name:
            self.quantize_b = None  # another model starts at full precision (u quantizes it)
            if self.load_b(name):
                self.set_status(f"loading model B: {name}…")
