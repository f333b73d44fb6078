"""Compare: two samplers side by side on one prompt, with per-step KL(A‖B) and top-1 agreement.

Model A is the app's loaded model. B starts as the same model at another temperature (B_HOT, or
B_COOL when A already runs that hot), so "one model at two temperatures" needs no loading. The
model-B input loads another model (toy, a local directory, a cached hub name) in a thread; with a
different vocabulary engine.views.compare compares the two on candidate text instead of token ids.

Shared context (the default): A samples and B takes A's token, so both read the same text and each
step compares two predictions for the same context. `f` switches to independent texts.

Threads: every sampler call is a job in a thread worker (group "compare"); jobs run one at a time
from a queue, as in the app, and only post messages. A run posts its steps in batches, at most
REDRAWS_PER_SECOND times a second.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from rich.cells import cell_len
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Static
from textual.worker import Worker, WorkerState

from engine.events import Candidate, SamplingConfig
from engine.runtime.loading import ModelLoadError
from engine.runtime.sampler import Sampler
from engine.views.compare import CompareSession, CompareStep
from tui.controls import cycle, cycle_head, nudge_temperature
from tui.heatmap import head_grid
from tui.pieces import label_text, visible
from tui.widgets.attention_map import AttentionMap
from tui.widgets.candidates import CandidatesView

B_HOT = 1.5  # B's temperature when A runs cooler than this
B_COOL = 0.7  # B's temperature when A already runs at B_HOT or hotter
REDRAWS_PER_SECOND = 30  # a run posts its steps at most this often
TOP_N = 10  # candidates kept per side
REFUSED_WHILE_RUNNING = ("step", "reset", "load", "follow")
FOLLOW_TEXT = {
    "a": "shared context: A samples, B takes A's token",
    None: "independent: each samples its own text",
}


def default_b_temperature(temperature_a: float) -> float:
    """B runs hotter than A (B_HOT), or cooler (B_COOL) when A is already at B_HOT or above."""
    return B_HOT if temperature_a < B_HOT else B_COOL


@dataclass
class Side:
    """What one column shows, copied from its sampler in the worker (plain data)."""

    model_name: str
    config: SamplingConfig  # the settings the candidates were computed with
    token_ids: list[int]  # the context window
    pieces: list[str]  # per context token
    rows: list[np.ndarray]  # T x [L, H, i + 1] attention row of each context token
    prompt: str
    generated: str  # everything generated, even what slid out of the window
    candidates: list[Candidate]  # the next token's, under `config`
    n_layer: int
    n_head: int


def side_of(sampler: Sampler) -> Side:
    return Side(
        model_name=sampler.model.name,
        config=replace(sampler.config),
        token_ids=list(sampler.tokens),
        pieces=list(sampler.pieces),
        rows=[view.attention for view in sampler.views],
        prompt=sampler.prompt,
        generated="".join(sampler.generated_text),
        candidates=sampler.preview(),
        n_layer=sampler.info.n_layer,
        n_head=sampler.info.n_head,
    )


def settings_line(config: SamplingConfig) -> str:
    return f"temperature {config.temperature:.2f} · top-k {config.top_k} · top-p {config.top_p:.2f} · seed {config.seed}"


def shown_layer_head(side: Side, layer: int, head: int | None) -> tuple[int, int | None]:
    """The screen's layer/head choice clamped to this side's model (A and B may differ in size)."""
    return min(layer, side.n_layer - 1), None if head is None else min(head, side.n_head - 1)


def summary_line(steps: list[CompareStep]) -> str:
    if not steps:
        return "no steps yet · n steps both, g runs"
    kls = [st.kl for st in steps]
    agree = sum(st.top1_agree for st in steps)
    return (
        f"{len(steps)} steps · mean KL(A‖B) {np.mean(kls):.4f} nats · "
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


class CompareScreen(Screen):
    AUTO_FOCUS = ""  # nothing focused: the keys act until `i` focuses the model-B input
    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back to generation (from the model-B input: leave it)"),
        Binding("n", "step", "Step", tooltip="Step A and B one token"),
        Binding("space", "step", "Step A and B one token", show=False),
        Binding("g", "run_pause", "Run/pause", tooltip="Run both up to max new tokens; press again to pause"),
        Binding("t", "temperature('a', -1)", "A temp", key_display="t/T", tooltip="Temperature of A down 0.1 (0 = greedy)"),
        Binding("T", "temperature('a', 1)", "Temperature of A up", show=False),
        Binding("y", "temperature('b', -1)", "B temp", key_display="y/Y", tooltip="Temperature of B down 0.1 (0 = greedy)"),
        Binding("Y", "temperature('b', 1)", "Temperature of B up", show=False),
        Binding("left_square_bracket", "layer(-1)", "Previous layer", show=False),
        Binding("right_square_bracket", "layer(1)", "Next layer", show=False),
        Binding("left_curly_bracket", "head(-1)", "Previous head (or mean)", show=False),
        Binding("right_curly_bracket", "head(1)", "Next head (or mean)", show=False),
        Binding("f", "follow", "Shared context (B takes A's token) or independent texts; resets", show=False),
        Binding("r", "reset", "Reset both to the prompt (generators re-seeded)", show=False),
        Binding("i", "edit_model_b", "Model B", tooltip="Type another model for B (toy, a local dir, a cached hub name); enter loads it"),
    ]
    DEFAULT_CSS = """
    CompareScreen .box {
        border: round $primary 50%;
        border-title-color: $text;
        border-title-style: bold;
        border-subtitle-color: $text-muted;
        padding: 0 1;
    }
    CompareScreen .box:focus-within { border: round $accent; }
    #cmp-columns { height: 1fr; }
    .cmp-side { width: 1fr; height: 1fr; }
    .cmp-settings { height: 1; color: $text-muted; }
    #model-b { border: none; height: 1; padding: 0; background: $boost; }
    #model-b:focus { border: none; background: $primary 20%; }
    .cmp-text-box { height: 3; scrollbar-size-vertical: 1; }
    .cmp-candidates { height: 5; }
    .cmp-attention { height: 1fr; min-height: 4; }
    #cmp-strip { height: 5; }
    #cmp-status { height: 1; padding: 0 1; color: $text-muted; }
    """

    class Progress(Message):
        """Both sides after a job, and the steps taken since the last message (restart: a new list)."""

        def __init__(self, a: Side, b: Side, steps: list[CompareStep], restart: bool, mode: str, follow: str | None) -> None:
            super().__init__()
            self.a = a
            self.b = b
            self.steps = steps
            self.restart = restart
            self.mode = mode  # "vocab" or "text" (engine.views.compare)
            self.follow = follow

    class Note(Message):
        """One sentence for the status line (an error the user can fix, the end of the text)."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class ModelLoaded(Message):
        def __init__(self, loaded: Any) -> None:
            super().__init__()
            self.loaded = loaded

    class Idle(Message):
        """A job's thread has finished (also after a cancel or an error): the next job may start."""

    def __init__(self, loaded: Any, prompt: str, config: SamplingConfig, shade: bool, temperature_b: float | None = None) -> None:
        """`loaded`: the app's engine.runtime.loading.LoadedModel (A, and B until another is loaded).

        temperature_b: B's starting temperature (default: default_b_temperature of A's).
        """
        super().__init__()
        self.loaded_a = loaded
        self.model_b = loaded
        self.prompt = prompt
        self.config_a = replace(config)  # what A's next token uses (keys change it)
        tb = default_b_temperature(config.temperature) if temperature_b is None else temperature_b
        self.config_b = replace(config, temperature=tb)
        self.shade = shade
        self.follow: str | None = "a"
        self.view_layer = 0
        self.view_head: int | None = None
        self.side_a: Side | None = None
        self.side_b: Side | None = None
        self.steps: list[CompareStep] = []
        self.mode = "vocab"
        self.session: CompareSession | None = None  # only jobs (one at a time) touch it
        self.pending: deque[tuple[str, Any]] = deque()
        self.busy = False
        self.running = False
        self.stop_run = threading.Event()  # g sets it to pause; workers are never cancelled (see tui/app.py)
        self.status = "building both samplers…"

    def compose(self) -> ComposeResult:
        with Horizontal(id="cmp-columns"):
            for side in ("a", "b"):
                with Vertical(id=f"side-{side}", classes="box cmp-side") as pane:
                    pane.border_title = side.upper()
                    if side == "a":
                        yield Static(f"model {self.loaded_a.name} (the main screen's)", id="model-a", classes="cmp-settings")
                    else:
                        yield Input(
                            self.model_b.name, placeholder="model B: toy, a local dir, a cached hub name (enter loads)", id="model-b"
                        )
                    yield Static(id=f"settings-{side}", classes="cmp-settings")
                    with VerticalScroll(classes="cmp-text-box", can_focus=False):
                        yield Static(id=f"text-{side}")
                    yield CandidatesView(id=f"candidates-{side}", classes="cmp-candidates")
                    yield AttentionMap(id=f"attention-{side}", classes="cmp-attention")
        with Vertical(id="cmp-strip", classes="box") as strip:
            strip.border_title = "KL(A‖B) and top-1 agreement per step"
            yield Static(id="cmp-summary")
            yield Static(id="cmp-steps")
        yield Static(id="cmp-status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.submit("setup")
        self.redraw()

    # ---- jobs: one at a time, in order ---------------------------------------------------------
    def submit(self, job: str, arg: Any = None) -> None:
        if self.running and job in REFUSED_WHILE_RUNNING:
            self.notify("Running — press g to pause first.", timeout=3)
            return
        if self.busy:
            if not (job == "preview" and any(queued == job for queued, _ in self.pending)):
                self.pending.append((job, arg))
            return
        self.busy = True
        self.running = job == "run"
        if self.running:
            self.set_status(f"running · {len(self.steps)} steps · g pauses")
        self.stop_run = threading.Event()
        self.compare_job(job, arg, self.stop_run)

    def on_unmount(self) -> None:
        self.stop_run.set()  # leaving the screen ends a run before its next step

    @work(thread=True, exit_on_error=False, group="compare")
    def compare_job(self, job: str, arg: Any, stop: threading.Event) -> None:
        """Runs in a thread: calls the samplers, posts results, never touches a widget."""
        try:
            if job == "setup":
                self.start_session(self.loaded_a, self.model_b)
            elif job == "load":
                self.load_model_b(*arg)
            elif self.session is not None:  # else building the samplers failed, and the status says why
                session = self.session
                self.sync_settings(session)
                if job == "step":
                    self.step_once(session)
                elif job == "run":
                    self.run_steps(session, stop)
                elif job == "reset":
                    session.set_prompt(self.prompt)
                    self.post_progress(session, [], restart=True)
                elif job == "follow":
                    self.session = CompareSession(session.a, session.b, follow=self.follow)
                    self.session.set_prompt(self.prompt)
                    self.post_progress(self.session, [], restart=True)
                elif job == "preview":
                    self.post_progress(session, [], restart=False)
        finally:
            self.post_message(self.Idle())

    def start_session(self, model_a: Any, model_b: Any) -> None:
        """Two samplers (they may share one model) on the prompt; replaces the session once ready."""
        session = CompareSession(
            Sampler(model_a, self.config_a, top_n=TOP_N), Sampler(model_b, self.config_b, top_n=TOP_N), follow=self.follow
        )
        session.set_prompt(self.prompt)
        self.session = session
        self.post_progress(session, [], restart=True)

    def load_model_b(self, name: str, allow_pickle: bool) -> None:
        try:
            if name == self.loaded_a.name:
                model = self.loaded_a  # the same weights: nothing to load
            else:
                from engine.runtime.loading import load_model

                model = load_model(name, device=self.loaded_a.device, allow_pickle=allow_pickle)
        except ModelLoadError as error:
            self.post_message(self.Note(f"Model B unchanged: {str(error).rstrip('.')}."))
            return
        self.start_session(self.loaded_a, model)
        self.post_message(self.ModelLoaded(model))

    def sync_settings(self, session: CompareSession) -> None:
        """Hand both samplers the settings the keys chose (read from the thread; never written there)."""
        for sampler, wanted in ((session.a, self.config_a), (session.b, self.config_b)):
            if sampler.config != wanted:
                sampler.set_config(**asdict(wanted))

    def step_once(self, session: CompareSession) -> None:
        if session.done:
            self.post_message(self.Note("The text ended (end-of-text); r resets."))
            return
        step = session.step()
        self.sync_settings(session)
        self.post_progress(session, [step])

    def run_steps(self, session: CompareSession, cancel: Any) -> None:
        """Up to max new tokens in all, posted in batches at most REDRAWS_PER_SECOND times a second."""
        remaining = self.config_a.max_new_tokens - len(session.steps)
        if remaining <= 0:
            self.post_message(self.Note(f"Already {len(session.steps)} steps (max new tokens); n steps on, r resets."))
            return
        batch, posted_at = [], time.perf_counter()
        for step in session.run(remaining, cancel):
            batch.append(step)
            self.sync_settings(session)
            if time.perf_counter() - posted_at >= 1 / REDRAWS_PER_SECOND:
                self.post_progress(session, batch)
                batch, posted_at = [], time.perf_counter()
        if batch:
            self.post_progress(session, batch)
        if session.done:
            self.post_message(self.Note("The text ended (end-of-text); r resets."))

    def post_progress(self, session: CompareSession, steps: list[CompareStep], restart: bool = False) -> None:
        self.post_message(self.Progress(side_of(session.a), side_of(session.b), steps, restart, session.mode, session.follow))

    # ---- results from the jobs -----------------------------------------------------------------
    def on_compare_screen_progress(self, message: Progress) -> None:
        self.side_a, self.side_b = message.a, message.b
        self.mode, self.follow = message.mode, message.follow
        if message.restart:
            self.steps = []
        self.steps.extend(message.steps)
        if self.running:
            if not self.stop_run.is_set():
                self.status = f"running · {len(self.steps)} steps · g pauses"
        else:
            self.status = f"ready · {len(self.steps)} steps"
        self.redraw()

    def on_compare_screen_note(self, message: Note) -> None:
        self.set_status(message.text)

    def on_compare_screen_model_loaded(self, message: ModelLoaded) -> None:
        self.model_b = message.loaded
        self.query_one("#model-b", Input).value = message.loaded.name
        self.set_status(
            f"model B is {message.loaded.name} · {'same vocabulary' if self.mode == 'vocab' else 'another vocabulary: compared on text'}"
        )

    def on_compare_screen_idle(self, message: Idle) -> None:
        self.busy = self.running = False
        if self.status.startswith(("running", "pausing")):
            self.set_status(f"ready · {len(self.steps)} steps")
        if self.pending:
            self.submit(*self.pending.popleft())
        elif self.session_outdated():
            self.submit("preview")

    def session_outdated(self) -> bool:
        """The keys changed a setting since the candidates shown were computed."""
        if self.side_a is None or self.side_b is None:
            return False
        return self.side_a.config != self.config_a or self.side_b.config != self.config_b

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.group == "compare":
            error = event.worker.error
            self.set_status(f"The compare engine stopped: {type(error).__name__}: {error}")

    # ---- drawing -------------------------------------------------------------------------------
    def set_status(self, text: str) -> None:
        self.status = text
        if self.is_mounted:
            self.query_one("#cmp-status", Static).update(text)

    def redraw(self) -> None:
        if not self.is_mounted:
            return
        for name, side, config in (("a", self.side_a, self.config_a), ("b", self.side_b, self.config_b)):
            self.query_one(f"#settings-{name}", Static).update(settings_line(config))
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
        pane = self.query_one(f"#side-{name}")
        pane.border_title = f"{name.upper()} · {side.model_name}"
        text = Text(visible(side.prompt, newlines=True), style="dim")
        text.append(visible(side.generated, newlines=True), style="bold")
        self.query_one(f"#text-{name}", Static).update(text)
        self.query_one(f"#text-{name}", Static).parent.scroll_end(animate=False)
        self.query_one(f"#candidates-{name}", CandidatesView).show(side.candidates)
        layer, head = shown_layer_head(side, self.view_layer, self.view_head)
        grid = head_grid(side.rows, layer, head)  # [T, T]
        self.query_one(f"#attention-{name}", AttentionMap).show(grid, side.pieces, len(side.pieces) - 1, self.shade)
        pane.border_subtitle = f"attention: layer {layer} · {'mean of heads' if head is None else f'head {head}'}"

    # ---- keys ----------------------------------------------------------------------------------
    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            self.set_focus(None)
        else:
            self.app.pop_screen()

    def action_step(self) -> None:
        self.submit("step")

    def action_run_pause(self) -> None:
        if self.running:
            self.stop_run.set()  # the run stops before its next step
            self.set_status("pausing…")
        else:
            self.submit("run")

    def action_temperature(self, side: str, direction: int) -> None:
        if side == "a":
            self.config_a = replace(self.config_a, temperature=nudge_temperature(self.config_a.temperature, direction))
        else:
            self.config_b = replace(self.config_b, temperature=nudge_temperature(self.config_b.temperature, direction))
        self.redraw()
        if not self.running and self.session_outdated():
            self.submit("preview")

    def layer_and_head_counts(self) -> tuple[int, int]:
        sides = [s for s in (self.side_a, self.side_b) if s is not None]
        return max((s.n_layer for s in sides), default=1), max((s.n_head for s in sides), default=1)

    def action_layer(self, direction: int) -> None:
        self.view_layer = cycle(self.view_layer, self.layer_and_head_counts()[0], direction)
        self.redraw()

    def action_head(self, direction: int) -> None:
        self.view_head = cycle_head(self.view_head, self.layer_and_head_counts()[1], direction)
        self.redraw()

    def action_follow(self) -> None:
        if self.running:
            self.notify("Running — press g to pause first.", timeout=3)
            return
        self.follow = None if self.follow == "a" else "a"
        self.submit("follow")

    def action_reset(self) -> None:
        self.submit("reset")

    def action_edit_model_b(self) -> None:
        self.query_one("#model-b", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        name = event.value.strip()
        self.set_focus(None)
        if not name:
            return
        self.set_status(f"loading model B: {name}…")
        self.submit("load", (name, bool(getattr(self.app, "allow_pickle", False))))
