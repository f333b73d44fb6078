"""The main screen: Parameters, Generation, Candidates, Attention and Layers panes, and their keys.

It owns the sampling settings the next token will use (one value, `settings`), the UI's copy of the
context (`transcript`) and the engine controller that runs the sampler on its own thread. A key
computes a new value, sends a command carrying it, and the controller's messages update the
transcript; the panes redraw from it as each answer arrives (a run's tokens come in at most
RUN_BATCHES_PER_SECOND batches a second).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from engine.events import AblationView, SamplingConfig
from engine.model.interventions import Ablation, parse_ablation
from engine.runtime.loading import is_out_of_memory, out_of_memory_sentence
from tui.commands import Branch, Force, Load, Parity, Preview, Recall, Reset, Run, SetAblations, SetPrompt, Step, Undo
from tui.controller import CommandDone, EngineController
from tui.controls import MAX_NEW_TOKENS_LADDER, TOP_K_LADDER, ladder_step, nudge_temperature, nudge_top_p
from tui.handlers import Loader, TraceLog
from tui.heatmap import head_grid
from tui.keys import LAYER_HEAD_BINDINGS, QUIT_HELP_SAVE, LayerHeadKeys, key_pair
from tui.messages import (
    CandidatesPreviewed,
    ContextReady,
    EngineFailed,
    EngineNote,
    LoadProgress,
    ModelReady,
    ParityComputed,
    ReplayReady,
    StepRecalled,
    TokenChosen,
    TokensGenerated,
    TokenUndone,
)
from tui.numbering import ablation_label, block_head_text
from tui.options import SessionOptions
from tui.references import chance_text, max_entropy
from tui.screens.attribution import AttributionScreen
from tui.screens.block_lab import BlockLabScreen
from tui.screens.compare import CompareScreen
from tui.screens.error import ErrorScreen, error_sentence
from tui.screens.heads import HeadsScreen
from tui.screens.tokenize import TokenizeScreen
from tui.transcript import Position, Transcript
from tui.widgets.attention_map import AttentionMap
from tui.widgets.candidates import CandidatesView
from tui.widgets.generation import GenerationView, TokenLines
from tui.widgets.layers import LayersView
from tui.widgets.pane import ExplainsPanes, pane
from tui.widgets.parameters import ParametersView, parameter_lines
from tui.widgets.timeline import Timeline

REDRAW_CHECKS_PER_SECOND = 30  # a redraw put off (the last one was too recent) waits at most this long
NOT_READ_IN = np.zeros((0, 0, 0), np.float32)  # the attention row of a token the model has not read in yet
NARROW_WIDTH = 100  # below this the panes shrink and the candidates pane narrows
LAYERS_LEGEND = "⠒ norm÷max · × cos(l, l-1)"  # constant: a legend that changed every token would repaint the whole pane


def ablation_lines(ablations: tuple, mode: str) -> list[tuple[str, str]]:
    """The Parameters line naming what is knocked out (none while nothing is)."""
    if not ablations:
        return []
    return [("ablated" if mode == "zero" else "mean-ablated", ", ".join(ablation_label(a) for a in ablations))]


def candidates_subtitle(ablation: AblationView | None) -> str:
    """The Candidates pane's column names; with ablations, how far the distribution moved."""
    if ablation is None:
        return "p before │ after T·k·p"
    flip = "top flips" if ablation.flipped else "same top"
    return f"ablated │ intact · KL {ablation.kl:.3f} · {flip}"


def settings_phrase(config: SamplingConfig) -> str:
    """How a token was drawn: "T 0.80", with top-k and top-p when they were on."""
    parts = ["greedy (T 0)" if config.temperature == 0 else f"T {config.temperature:.2f}"]
    if config.top_k:
        parts.append(f"top-k {config.top_k}")
    if config.top_p < 1:
        parts.append(f"top-p {config.top_p:.2f}")
    return " · ".join(parts)


def travel_heading(index: int, n_tokens: int, position: Position) -> str:
    """The line over an earlier token's step: "token 17 of 42 · generated at T 0.80" (or "prompt token")."""
    where = f"token {index + 1} of {n_tokens}"
    if not position.generated:
        return f"{where} · prompt token" + ("" if index else " · the first: nothing before it predicts it")
    if position.step is None or position.step.config is None:
        return f"{where} · generated"
    how = "forced (picked by hand)" if position.forced else f"generated at {settings_phrase(position.step.config)}"
    knocked = (
        f" · ablated {', '.join(ablation_label(parse_ablation(label)) for label in position.step.ablated)}" if position.step.ablated else ""
    )
    return f"{where} · {how}{knocked}"


class MainScreen(ExplainsPanes, LayerHeadKeys, Screen):
    HELP_TITLE = "Generation (main screen)"
    BINDINGS = [
        *QUIT_HELP_SAVE,
        Binding("n", "step", "Step", tooltip="Generate one token"),
        Binding("space", "step", "Step one token", show=False),
        Binding("g", "run_pause", "Run", tooltip="Run up to max new tokens; press again to pause"),
        *key_pair("t", "T", "temperature({})", "Temperature down 0.1 (0 = greedy)", "Temperature up", footer="Temp"),
        *key_pair("k", "K", "top_k({})", "Top-k down", "Top-k up"),
        *key_pair("p", "P", "top_p({})", "Top-p down", "Top-p up"),
        *key_pair("m", "M", "max_new_tokens({})", "Max new tokens down", "Max new tokens up"),
        *key_pair("s", "S", "seed({})", "Seed down", "Seed up"),
        *LAYER_HEAD_BINDINGS,
        Binding(
            "1",
            "pick(1)",
            "Pick",
            key_display="1-9",
            show=False,
            tooltip="Force candidate 1–9 as the next token; at an earlier token's step: branch, taking it there instead",
        ),
        *[Binding(str(i), f"pick({i})", f"Pick candidate {i}", show=False) for i in range(2, 10)],
        Binding("backspace", "undo", "Undo", key_display="⌫", tooltip="Remove the last generated token"),
        Binding("r", "reset", "Reset: back to the prompt, generator re-seeded", show=False),
        Binding(
            "left",
            "select(-1)",
            "Time travel: show the step that chose the previous token (its candidates, lens, attention row)",
            show=False,
        ),
        Binding("right", "select(1)", "Time travel: the next token's step; past the newest, back to the live next token", show=False),
        Binding("end", "select_newest", "Back to the live next token (stepping does this too)", show=False),
        # priority: acted on as the app reads it, before the keys after it go anywhere (see action_edit_prompt)
        Binding("i", "edit_prompt", "Edit the prompt (enter applies and resets, escape cancels)", show=False, priority=True),
        Binding("b", "block_lab", "Lab", tooltip="Block lab: the NumPy block stack and the parity check"),
        # not in the footer (it would not fit at 80 columns): in help and the command palette
        Binding(
            "c", "compare", "Compare", show=False, tooltip="One model at two temperatures (or two models): per-step KL and top-1 agreement"
        ),
        Binding("w", "tokenize", "Tokens", show=False, tooltip="How a sentence splits into tokens, in many languages"),
        Binding("a", "attribution", "Direct logit attribution of the next token's candidates", show=False),
        Binding(
            "x",
            "ablate('head')",
            "Knock out the shown head (the whole layer's attention when showing the mean); again: restore",
            show=False,
        ),
        Binding("X", "ablate('mlp')", "Knock out the shown layer's MLP; again: restore", show=False),
        Binding("0", "clear_ablations", "Restore every knocked-out component", show=False),
        Binding("h", "all_heads", "Every layer × head of the context at a glance, with its statistics", show=False),
    ]
    EXPLANATIONS = {
        "parameters-pane": (
            "Next token's settings. temperature (t/T) divides the logits: <1 sharper, >1 flatter, 0 = greedy. "
            "top-k (k/K): the k likeliest; top-p (p/P): the fewest likeliest whose p add up to ≥ p, after "
            "temperature. block, head: what Attention shows; ablated: knocked out (x X; 0 restores)."
        ),
        "generation-pane": (
            "The prompt (grey) and new tokens; tints alternate so each token shows where it ends. Colour: its p, "
            "red (rare) → green (likely); italic: forced (1–9); ↵ newline, □ part of a character. p: each token's "
            "p at T=1; ent≤: entropy of what it was drawn from (after T·k·p; max ln V). ← →: a token's step."
        ),
        "candidates-pane": (
            "Likeliest next tokens (· a space). p before: the model's p (T=1); bar and after: once T, top-k, "
            "top-p reshape it (drawn from these). cut: removed. chance: 1/V, a uniform guess. 1–9 force one (▸ "
            "chosen). Ablated (x, X): ablated │ intact p, KL."
        ),
        "attention-pane": (
            "Row = the token attending (query), column = the one it looks at (key); rows sum to 1, brighter = "
            "more. Grey (·) above the diagonal: the causal mask. ◀ the row that chooses the token. max-pooled: a "
            "cell holds several tokens (their largest). [ ] block, { } a head or the mean (it blurs their "
            "patterns)."
        ),
        "layers-pane": (
            "The residual stream at the newest token: emb (token + position embeddings), then after block 1…L. ⠒ "
            "norm ÷ the largest. × cos(l, l-1): cosine with the step before, 1 = same direction (0.96 ≈ 16°: a "
            "long stream turns slowly). lens→next: ln_f + unembedding after each block, its guess."
        ),
    }
    PALETTE = [  # (title, what it does, action): the command palette's entries for this screen
        ("Ablate the head", "Knock out the shown head, or the layer's attention for the mean (x)", "ablate('head')"),
        ("Ablate the MLP", "Knock out the shown layer's MLP (X)", "ablate('mlp')"),
        ("Mean ablation on/off", "Replace knocked-out components by their mean over the context instead of zero", "ablation_mode"),
        ("Clear ablations", "Restore every knocked-out component (0)", "clear_ablations"),
        ("Step one token", "Generate the next token (n)", "step"),
        ("Run / pause", "Generate up to max new tokens; again to pause (g)", "run_pause"),
        ("Undo", "Remove the last generated token (backspace)", "undo"),
        ("Reset", "Back to the prompt, generator re-seeded (r)", "reset"),
        ("Block lab", "The NumPy block stack and the parity check (b)", "block_lab"),
        ("Compare", "Two models, or one at two temperatures, side by side (c)", "compare"),
        ("Tokenization", "How a sentence splits into tokens, in many languages (w)", "tokenize"),
        ("Attribution", "Each layer's and head's share of the next token's logit (a)", "attribution"),
        ("All heads", "Every layer × head of the context at a glance, with its statistics (h)", "all_heads"),
    ]

    def __init__(self, options: SessionOptions) -> None:
        super().__init__()
        self.options = options
        self.settings: SamplingConfig = replace(options.config)  # what the next token will use (the one copy)
        self.prompt = options.prompt
        self.transcript = Transcript()
        self.trace = TraceLog(options.trace)
        self.engine = EngineController(self.post_message, Loader(self.trace, replaying=options.replay is not None), self.notify)
        self.loaded = None  # engine.runtime.loading.LoadedModel once ready (compare and tokenization start from it)
        self.info = None  # engine.events.ModelInfo once ready
        self.replay_steps: tuple[int, bool] | None = None  # replay: (steps recorded, recomputed?)
        self.replay_at: tuple[int, int, int] | None = None  # replay: (steps applied, session shown, sessions)
        self.parity: tuple[dict | None, str | None] = (None, None)  # (report, error) of the parity check
        self.selected_token: int | None = None  # time travel: the token whose step is shown; None: the live next token
        self.subtitles: dict[str, str] = {}  # pane selector -> the border subtitle last set
        self.needs_redraw = False
        self.next_redraw_at = 0.0  # perf_counter time before which the timer does not redraw
        self.chosen: Position | None = None  # a key's token drawn before the model read it in (TokenChosen)
        self.text_frame_pending = False  # the text was drawn alone and its frame is not written yet
        self.rest_due = False  # the status and the other panes follow that frame
        self.load_started = time.perf_counter()
        self.run_clock: tuple[float, float, int] | None = None  # (g pressed, last token shown, tokens since): the run's tok/s
        self.ablations: tuple = ()  # engine.model.interventions.Ablation knocked out for the next tokens
        self.ablation_mode = "zero"  # or "mean": the component's mean over the context
        self.inspector: tuple | None = None  # (loaded model, its Inspector) once the attribution screen needed one

    def compose(self) -> ComposeResult:
        with Horizontal(id="top"):
            with pane("Parameters", "parameters-pane"):
                yield ParametersView(id="parameters")
            with pane("Generation · i edits the prompt", "generation-pane"):
                with Horizontal(id="prompt-row"):  # shown only while the prompt is edited
                    yield Static("prompt ›", id="prompt-label")
                    yield Input(placeholder="the text to continue (enter applies and resets, escape cancels)", id="prompt")
                yield GenerationView(id="generation")
                yield Timeline(id="timeline")
            with pane("Candidates", "candidates-pane", "p before │ after T·k·p"):
                yield CandidatesView(id="candidates")
        with Horizontal(id="bottom"):
            with pane("Attention", "attention-pane"):
                yield AttentionMap(id="attention")
            with pane("Layers", "layers-pane", LAYERS_LEGEND):  # constant: the chart's own legend gives the norm's scale
                yield LayersView(id="layers")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#prompt", Input).value = self.prompt
        self.query_one("#prompt-row").display = False
        self.query_one("#generation", GenerationView).focus()
        self.show_loading(True)
        self.set_status(f"loading {self.options.model_name}…")
        self.set_interval(1 / REDRAW_CHECKS_PER_SECOND, self.redraw_if_needed)
        self.redraw()

    def start_loading(self) -> None:
        """The app calls this once the first frame is on screen."""
        o = self.options
        self.engine.send(Load(o.model, o.prompt, self.settings, o.device, o.engine, o.threads, o.allow_pickle, o.replay))

    def on_unmount(self) -> None:
        self.engine.close()  # a run in progress ends before its next token: exiting does not wait for it
        self.trace.close()

    def on_resize(self) -> None:
        self.set_class(self.size.width < NARROW_WIDTH, "-narrow")

    @property
    def drawable(self) -> bool:
        """False while the app shuts down: late engine messages must not touch removed widgets."""
        return self.is_mounted and self.app.is_running

    def show_loading(self, loading: bool) -> None:
        if self.drawable:
            for pane in ("#candidates", "#attention", "#layers"):
                self.query_one(pane).loading = loading

    def set_status(self, text: str) -> None:
        if self.drawable:
            self.set_subtitle("#generation-pane", text)

    def set_subtitle(self, selector: str, text: str) -> None:
        """Setting a border subtitle repaints the whole pane, children included: only when it changes."""
        if self.subtitles.get(selector) != text:
            self.subtitles[selector] = text
            self.query_one(selector).border_subtitle = text

    def idle_status(self) -> str:
        if self.replay_steps is not None:
            n_steps, recomputes = self.replay_steps
            applied, session, n_sessions = self.replay_at or (self.transcript.n_generated, 1, 1)
            which = f" · session {session}/{n_sessions}" if n_sessions > 1 else ""
            return f"replay {applied}/{n_steps}{which} · {'recomputed' if recomputes else 'as recorded'}"
        return f"ready · {self.transcript.n_generated} new{self.timing()}"

    def timing(self) -> str:
        """The last run's tokens per second (wall clock, as the user saw them), else the last token's engine time."""
        last_ms = self.transcript.last_ms
        if self.options.deterministic or (last_ms is None and self.run_clock is None):
            return ""
        if self.run_clock is None:
            return f" · last token {last_ms:.1f} ms"
        started, last, n_tokens = self.run_clock
        return f" · {n_tokens / (last - started):.0f} tok/s" if n_tokens and last > started else ""

    def show_progress(self) -> None:
        if self.engine.pausing:
            self.set_status("pausing…")
        elif self.engine.running and self.replay_steps is None:
            self.set_status(f"running · {self.transcript.n_generated} new{self.timing()} · g pauses")
        else:
            self.set_status(self.idle_status())

    # ---- drawing -----------------------------------------------------------------------------
    def highlighted_token(self) -> int | None:
        """The attention row of the step shown: the newest token's (it predicts the next one), or, time
        travelling, the row of the token before the selected one (the position that chose it)."""
        n_tokens = len(self.transcript.positions)
        if n_tokens == 0:
            return None
        return n_tokens - 1 if self.selected_token is None else max(0, self.selected_token - 1)

    def travelled(self) -> tuple[int, Position] | None:
        """Time travel: (index, position) of the selected token, or None for the live view."""
        if self.selected_token is None or self.selected_token >= len(self.transcript.positions):
            return None
        return self.selected_token, self.transcript.positions[self.selected_token]

    def redraw_if_needed(self) -> None:
        if self.needs_redraw and time.perf_counter() >= self.next_redraw_at:
            began = time.perf_counter()
            self.redraw()
            finished = time.perf_counter()
            # a slow terminal or machine: wait as long as the redraw took, so the UI thread stays at most
            # half busy and the engine thread keeps its share of the interpreter
            self.next_redraw_at = finished + (finished - began)

    def redraw_soon(self) -> None:
        """A key's answer, or a run's batch of tokens, is drawn at once (unless the last redraw was too recent)."""
        self.needs_redraw = True
        self.redraw_if_needed()

    def text_changed(self) -> None:
        """Tokens added or undone. During a run they are drawn with the run's status (each batch is one
        redraw). After a key the text is drawn alone, and the status and the other panes once that frame
        is written: the token is on screen sooner (a full frame takes ~10 ms to compose on a laptop-class
        CPU; the text's line, ~1 ms)."""
        if self.engine.running:
            self.redraw_soon()
            return
        self.rest_due = True
        if self.drawable and self.is_current:
            self.draw_text_first()
        if not self.text_frame_pending:  # nothing to wait for: drawn already (when chosen), or not on screen
            self.text_frame_written()

    def draw_text_first(self) -> None:
        if self.draw_text():
            self.text_frame_pending = True
            self.app.after_next_frame(self.text_frame_written)

    def text_frame_written(self) -> None:
        self.text_frame_pending = False
        if self.rest_due:
            self.rest_due = False
            self.show_progress()
            self.redraw_soon()

    def draw_text(self) -> bool:
        """The Generation pane's text (with a token chosen and not yet read in); True if a row is to be repainted."""
        positions = self.transcript.positions if self.chosen is None else [*self.transcript.positions, self.chosen]
        return self.query_one(GenerationView).show(positions, self.selected_token, self.app.shade, follow=self.selected_token is None)

    def redraw(self) -> None:
        self.needs_redraw = False
        if not self.drawable:
            return
        if self.engine.running:
            self.show_progress()  # the token count and tok/s, with the tokens (not on every batch of the engine's)
        transcript, info = self.transcript, self.info
        self.query_one(ParametersView).show(
            parameter_lines(self.options.model_name, info.device if info else "…", self.settings, self.view_layer, self.view_head)
            + ablation_lines(self.ablations, self.ablation_mode)
        )
        self.draw_text()
        self.query_one(Timeline).show(transcript.positions, max_entropy(info.vocab_size) if info else None)
        travel = self.travelled()
        if travel is None:
            self.query_one(CandidatesView).show(transcript.candidates, transcript.ablation)
            self.set_subtitle("#candidates-pane", candidates_subtitle(transcript.ablation))
        else:
            index, position = travel
            step = position.step
            heading = travel_heading(index, len(transcript.positions), position)
            if step is None and index > 0:
                heading += " · computing its prediction…"
            candidates = step.candidates if step else []
            self.query_one(CandidatesView).show(candidates, None, (position.token_id, position.piece), heading)
            self.set_subtitle("#candidates-pane", "▸ chosen · p before │ after" if step else "end: back to live")
        if info is not None and transcript.positions:
            grid = head_grid(transcript.rows, self.view_layer, self.view_head)  # [T, T]
            self.query_one(AttentionMap).show(grid, transcript.pieces, self.highlighted_token(), self.app.shade)
            self.set_subtitle("#attention-pane", block_head_text(self.view_layer, self.view_head))
        if travel is None:
            self.query_one(LayersView).show(transcript.norms, transcript.cosines, transcript.lens)
        else:
            step = travel[1].step
            empty = np.zeros(0, np.float32)
            self.query_one(LayersView).show(
                step.norms if step else empty, step.cosines if step else empty, step.lens if step else [], travel[1].token_id
            )

    def engine_label(self) -> str:
        """The engine computing the tokens ("numpy · 1 thread"); on a GPU, "torch"."""
        info = self.info
        if info is None or not info.engine:
            return ""
        threads = self.loaded.engine_threads if info.device == "cpu" else None
        return info.engine if threads is None else f"{info.engine} · {threads} thread{'s' if threads > 1 else ''}"

    def figures(self) -> dict:
        """What `e` saves besides the screenshot (engine.views.export.export_bundle's arguments)."""
        transcript = self.transcript
        attention = head_grid(transcript.rows, self.view_layer, self.view_head) if self.info and transcript.positions else None  # [T, T]
        return dict(
            attention=attention,
            tokens=transcript.pieces,
            layer=self.view_layer,
            head=self.view_head,
            candidates=list(transcript.candidates),
            trace_lines=self.trace.lines(),
        )

    # ---- messages from the engine thread -----------------------------------------------------
    def on_load_progress(self, message: LoadProgress) -> None:
        self.set_status(f"loading {message.step}/{message.total}: {message.text}…")

    def on_model_ready(self, message: ModelReady) -> None:
        self.loaded, self.info = message.loaded, message.info
        self.became_ready(message.context)
        took = "" if self.options.deterministic else f" in {time.perf_counter() - self.load_started:.1f} s"
        self.set_status(f"ready{took}")

    def on_replay_ready(self, message: ReplayReady) -> None:
        self.loaded = message.loaded
        self.info = message.loaded.info if message.loaded else None
        self.replay_steps = (message.n_steps, message.recomputes)
        self.query_one("#generation-pane").border_title = "Generation · a recording"  # no prompt to edit
        self.became_ready(message.context)
        self.set_status(self.idle_status())
        if message.note:
            self.notify(f"Showing what was recorded: {message.note}.", timeout=8)

    def became_ready(self, context: ContextReady) -> None:
        self.set_subtitle("#parameters-pane", self.engine_label())  # asking the BLAS library takes a millisecond: once
        if self.info is not None:
            self.query_one("#candidates-pane").border_title = f"Candidates · 1/V {chance_text(self.info.vocab_size)}"
        self.on_context_ready(context)
        self.show_loading(False)
        self.redraw()
        if isinstance(self.app.screen, BlockLabScreen):
            self.request_parity()

    def on_context_ready(self, message: ContextReady) -> None:
        self.transcript.reset_to(message)
        self.selected_token = None  # a new context: its tokens are not those selected
        self.replay_at = message.replay_at
        if self.replay_steps is not None:
            self.settings = message.config  # the Parameters pane shows the recorded settings
        self.set_status(self.idle_status())
        self.redraw_soon()  # a reset, a new prompt or a replay step is drawn as it arrives

    def on_token_chosen(self, message: TokenChosen) -> None:
        """A key's token, drawn before the model reads it in (most of the step): on screen that much sooner."""
        if self.engine.running or self.selected_token is not None or not self.drawable or not self.is_current:
            message.shown.set()
            return
        self.chosen = Position(message.token_id, message.text, NOT_READ_IN, True, message.p_raw, message.forced)
        self.draw_text_first()
        if self.text_frame_pending:
            self.app.after_next_frame(message.shown.set)
        else:
            message.shown.set()

    def on_tokens_generated(self, message: TokensGenerated) -> None:
        self.chosen = None  # now in the transcript
        for event in message.events:
            self.transcript.append(event)
        if self.run_clock is not None and self.engine.running:
            started, _, n_tokens = self.run_clock
            self.run_clock = (started, time.perf_counter(), n_tokens + len(message.events))
        if message.rows is not None:
            self.transcript.replace_rows(message.rows)
        self.transcript.set_candidates(message.candidates, message.config, message.ablation)
        self.text_changed()

    def on_token_undone(self, message: TokenUndone) -> None:
        self.transcript.pop(message.lens, message.norms, message.cosines)
        self.transcript.set_candidates(message.candidates, message.config, message.ablation)
        self.text_changed()

    def on_candidates_previewed(self, message: CandidatesPreviewed) -> None:
        self.transcript.set_candidates(message.candidates, message.config, message.ablation)
        self.redraw_soon()

    def on_engine_note(self, message: EngineNote) -> None:
        self.engine.say(message.text, message.severity)

    def on_command_done(self, message: CommandDone) -> None:
        self.engine.done(message)
        if self.chosen is not None:  # its step failed: the token never came
            self.chosen = None
            self.redraw_soon()
        if isinstance(message.command, Run):
            self.show_progress()
            self.redraw()

    def on_parity_computed(self, message: ParityComputed) -> None:
        self.parity = (message.report, message.error)
        if isinstance(self.app.screen, BlockLabScreen):
            self.app.screen.show_parity(*self.parity)

    def on_engine_failed(self, message: EngineFailed) -> None:
        if message.loading:
            self.show_loading(False)
            self.set_status("no model: see the error")
        if is_out_of_memory(message.error):
            text = out_of_memory_sentence(self.info.device if self.info else "the device")
        else:
            text = error_sentence(message.error)
        title = "Could not load the model" if message.loading else "The engine stopped"
        self.app.push_screen(ErrorScreen(title, text))

    # ---- settings keys: applied to the next token --------------------------------------------
    def change_settings(self, **changes) -> None:
        new = replace(self.settings, **changes)
        new.validate()
        if new != self.settings and self.engine.send(Preview(new)):
            self.settings = new
            self.needs_redraw = True

    def action_temperature(self, direction: int) -> None:
        self.change_settings(temperature=nudge_temperature(self.settings.temperature, direction))

    def action_top_k(self, direction: int) -> None:
        self.change_settings(top_k=ladder_step(self.settings.top_k, TOP_K_LADDER, direction))

    def action_top_p(self, direction: int) -> None:
        self.change_settings(top_p=nudge_top_p(self.settings.top_p, direction))

    def action_max_new_tokens(self, direction: int) -> None:
        self.change_settings(max_new_tokens=ladder_step(self.settings.max_new_tokens, MAX_NEW_TOKENS_LADDER, direction))

    def action_seed(self, direction: int) -> None:
        self.change_settings(seed=max(0, self.settings.seed + direction))

    # ---- ablation keys: knock out components for the next tokens ----------------------------
    def send_ablations(self, ablations: tuple, mode: str) -> None:
        if self.engine.send(SetAblations(ablations, mode, self.settings)):
            self.ablations, self.ablation_mode = ablations, mode
            self.needs_redraw = True

    def action_ablate(self, kind: str) -> None:
        """x: the shown head (the layer's attention when the heatmap shows the mean); X: the layer's MLP."""
        if self.info is None:
            return
        if kind == "mlp":
            component = Ablation(self.view_layer, "mlp")
        else:
            component = Ablation(self.view_layer, "attn") if self.view_head is None else Ablation(self.view_layer, "head", self.view_head)
        chosen = set(self.ablations) ^ {component}  # pressed again: restored
        self.send_ablations(tuple(sorted(chosen)), self.ablation_mode)

    def action_ablation_mode(self) -> None:
        self.send_ablations(self.ablations, "mean" if self.ablation_mode == "zero" else "zero")

    def action_clear_ablations(self) -> None:
        if self.ablations:
            self.send_ablations((), self.ablation_mode)

    # ---- view keys ---------------------------------------------------------------------------
    def layer_head_counts(self) -> tuple[int, int] | None:
        return None if self.info is None else (self.info.n_layer, self.info.n_head)

    def action_select(self, direction: int) -> None:
        """Left from the live view selects the newest token; right past the newest returns to live."""
        n_tokens = len(self.transcript.positions)
        if n_tokens == 0:
            return
        current = n_tokens if self.selected_token is None else self.selected_token
        self.select_token(max(0, current + direction))

    def select_token(self, index: int) -> None:
        """Show the step that chose token `index` (index past the newest: the live view); a prompt token's
        step is asked of the engine the first time."""
        positions = self.transcript.positions
        self.selected_token = None if index >= len(positions) else index
        travel = self.travelled()
        if travel is not None and travel[1].step is None and travel[0] > 0:
            self.engine.send(Recall(travel[0], travel[1].token_id))
        self.redraw()

    def on_token_lines_clicked(self, message: TokenLines.Clicked) -> None:
        self.select_token(message.index)

    def action_select_newest(self) -> None:
        self.selected_token = None
        self.redraw()

    def on_step_recalled(self, message: StepRecalled) -> None:
        if self.transcript.remember_step(message.index, message.token_id, message.step):
            self.redraw_soon()

    # ---- engine keys -------------------------------------------------------------------------
    def back_to_live(self) -> None:
        """Stepping ends time travel: the panes follow the newest token again."""
        if self.selected_token is not None:
            self.selected_token = None
            self.needs_redraw = True

    def action_step(self) -> None:
        self.back_to_live()
        if self.engine.send(Step(self.settings)):
            self.run_clock = None

    def action_run_pause(self) -> None:
        self.back_to_live()
        if not self.engine.running:
            now = time.perf_counter()
            self.run_clock = (now, now, 0)
        self.engine.toggle_run(Run(self.settings, self.settings.max_new_tokens))
        self.show_progress()

    def action_pick(self, rank: int) -> None:
        """1–9: force a candidate of the live next token; time travelling, branch: take it instead of the token chosen then."""
        travel = self.travelled()
        if travel is None:
            self.engine.send(Force(rank, self.settings))
            return
        index, position = travel
        if not position.generated or position.step is None:
            self.engine.say("This is a prompt token: i edits the prompt; a generated token's step can be branched with 1–9.", "warning")
        elif rank > len(position.step.candidates):
            self.engine.say(f"There is no candidate {rank}.")
        elif self.engine.send(Branch(index, position.step.candidates[rank - 1].token_id, self.settings)):
            self.back_to_live()

    def action_undo(self) -> None:
        self.back_to_live()
        self.engine.send(Undo(self.settings))

    def action_reset(self) -> None:
        if self.engine.send(Reset(self.settings)):
            self.selected_token = None

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """While an input has the keys, i is a letter to type, not the prompt key."""
        return not (action == "edit_prompt" and isinstance(self.focused, Input))

    def action_edit_prompt(self) -> None:
        """i: the prompt line opens and takes the keys at once, so a paste or fast typing lands in it.

        The app hands each key to the focused widget as it reads it; `i` is a priority binding, so this
        runs before the keys after it are handed on, and the focus moves now (Widget.focus() would wait).
        """
        self.query_one("#prompt-row").display = True
        self.set_focus(self.query_one("#prompt", Input))

    def close_prompt(self, value: str) -> None:
        self.query_one("#prompt", Input).value = value
        self.query_one("#prompt-row").display = False
        self.set_focus(self.query_one(GenerationView))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            self.engine.say("The prompt is empty: type the text to continue (escape keeps the old prompt).", "warning")
            return
        if self.engine.send(SetPrompt(event.value, self.settings)):
            self.prompt = event.value
            self.selected_token = None
        self.close_prompt(self.prompt)

    def key_escape(self) -> None:
        if isinstance(self.focused, Input):
            self.close_prompt(self.prompt)  # cancelled: the prompt stays as it was

    # ---- other screens -----------------------------------------------------------------------
    def needs_model(self) -> bool:
        """True (after saying so) when no model is loaded: before loading ends, or a replay without one."""
        if self.loaded is None:
            self.engine.say("This needs the model: it is not loaded.", "warning")
        return self.loaded is None

    def request_parity(self, recheck: bool = False) -> None:
        """The block lab's parity figure: checked once per model, again on request."""
        if recheck:
            self.parity = (None, None)
        if self.parity == (None, None) and self.info is not None:
            self.engine.send(Parity(tuple(p.token_id for p in self.transcript.positions if not p.generated)))

    def action_block_lab(self) -> None:
        self.open_block_lab()

    def open_block_lab(self, config=None) -> None:
        """The block lab, from `config` (engine.model.blocklab.BlockLabConfig; default: the notebook's block)."""
        if not isinstance(self.app.screen, BlockLabScreen):
            o = self.options
            self.app.push_screen(BlockLabScreen(o.model_name, self.request_parity, self.parity, o.deterministic, config))

    def action_compare(self) -> None:
        if not self.needs_model() and not isinstance(self.app.screen, CompareScreen):
            self.app.push_screen(CompareScreen(self.loaded, self.prompt, self.settings, self.app.shade, self.options.allow_pickle))

    def action_tokenize(self) -> None:
        if not self.needs_model() and not isinstance(self.app.screen, TokenizeScreen):
            self.app.push_screen(TokenizeScreen(self.loaded.tokenizer, self.options.model_name, None))  # a decoder: no encoder view

    def action_all_heads(self) -> None:
        if self.info is None or not self.transcript.positions:
            self.engine.say("All heads needs the context's attention: the model is not loaded yet.", "warning")
            return
        if not isinstance(self.app.screen, HeadsScreen):
            positions = self.transcript.positions
            selected = (self.view_layer, self.view_head or 0)
            self.app.push_screen(
                HeadsScreen(
                    self.transcript.rows, self.transcript.pieces, [p.token_id for p in positions], self.app.shade, self.open_head, selected
                )
            )

    def open_head(self, layer: int, head: int | None) -> None:
        """Show this layer and head in the Attention pane (the all-heads screen's enter)."""
        self.view_layer, self.view_head = layer, head
        self.needs_redraw = True

    def action_attribution(self) -> None:
        if self.needs_model() or isinstance(self.app.screen, AttributionScreen):
            return
        if not self.transcript.candidates:
            self.engine.say("Attribution needs the next token's candidates: none yet.", "warning")
            return
        ids = [p.token_id for p in self.transcript.positions]
        self.app.push_screen(AttributionScreen(self.get_inspector, ids, self.transcript.candidates))

    def get_inspector(self):
        """The loaded model's NumPy Inspector, built on first use (on the attribution screen's worker) and kept."""
        from engine.runtime.interventions import Inspector

        loaded = self.loaded
        if self.inspector is None or self.inspector[0] is not loaded:
            self.inspector = (loaded, Inspector(loaded.hf_model, "numpy"))
        return self.inspector[1]
