"""The main screen: Parameters, Generation, Candidates, Attention and Layers panes, and their keys.

It draws the session (tui/session.py: the settings, the context, the engine) and turns keys into the
session's commands. The engine's messages come here: the session takes each one in, then it is
drawn, when the frame pacing says (tui/pacing.py: a key's token first, the other panes a frame later,
a run's tokens in batches). The app opens the other screens.
"""

from __future__ import annotations

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer

from tui import messages
from tui.captions import ablation_lines, candidates_subtitle, model_title, travel_heading
from tui.commands import Run
from tui.controller import CommandDone
from tui.heatmap import SCALES, head_grid
from tui.keys import BLOCK_JUMP_BINDINGS, LAYER_HEAD_BINDINGS, QUIT_HELP_SAVE, LayerHeadKeys, key_pair
from tui.numbering import block_head_text, kv_group
from tui.pacing import REDRAW_CHECKS_PER_SECOND, FramePacing
from tui.pieces import fit_parts
from tui.references import chance_text, max_entropy
from tui.session import Session
from tui.session_keys import SessionKeys
from tui.transcript import Position
from tui.widgets.attention_map import AttentionMap
from tui.widgets.candidates import CandidatesView
from tui.widgets.generation import GenerationView
from tui.widgets.layers import LayersView
from tui.widgets.pane import ExplainsPanes, pane
from tui.widgets.parameters import ParametersView, parameter_lines
from tui.widgets.prompt_line import PromptLine
from tui.widgets.timeline import Timeline

NOT_READ_IN = np.zeros((0, 0, 0), np.float32)  # the attention row of a token the model has not read in yet
NARROW_WIDTH = 100  # below this the panes shrink and the candidates pane narrows
WIDE_WIDTH = 160  # from this on the candidates pane and the Layers pane widen: whole pieces, the lens beside a chart
SUBTITLE_MARGIN = 6  # a pane's border cells around its subtitle: corners, a rule each side, spaces
LAYERS_LEGEND = "⠒ norm÷max · × cos(l, l-1)"  # constant: a legend that changed every token would repaint the whole pane


class MainScreen(ExplainsPanes, SessionKeys, LayerHeadKeys, Screen):
    HELP_TITLE = "Generation (main screen)"
    BINDINGS = [
        *QUIT_HELP_SAVE,
        Binding("n", "step", "Step", tooltip="Generate one token"),
        Binding("space", "step", "Step one token", show=False),
        Binding("g", "run_pause", "Run", tooltip="Run: up to max new tokens more (again: pause)"),
        *key_pair("t", "T", "nudge('temperature', {})", "Temperature down 0.1 (0 = greedy)", "Temperature up", footer="Temp"),
        *key_pair("k", "K", "nudge('top_k', {})", "Top-k down", "Top-k up"),
        *key_pair("p", "P", "nudge('top_p', {})", "Top-p down", "Top-p up"),
        *key_pair("m", "M", "nudge('max_new_tokens', {})", "Max new tokens down", "Max new tokens up"),
        *key_pair("s", "S", "nudge('seed', {})", "Seed down", "Seed up"),
        *LAYER_HEAD_BINDINGS,
        *BLOCK_JUMP_BINDINGS,
        Binding(
            "percent_sign",
            "colour_scale",
            "Attention colour scale: log → linear → sink excluded (position 0 left out, marked)",
            key_display="%",
            show=False,
        ),
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
        Binding("escape", "cancel_prompt", "Cancel", tooltip="While editing the prompt: keep the old one"),  # footer: editing only
        Binding("b", "app.open_screen('block_lab')", "Lab", tooltip="Block lab: the NumPy block stack and the parity check"),
        Binding(
            "ctrl+o", "app.pick_model", "Open another model (what tfund models lists); the one in use stays until it is ready", show=False
        ),
        # not in the footer (it would not fit at 80 columns): in help and the command palette
        Binding(
            "c",
            "app.open_screen('compare')",
            "Compare",
            show=False,
            tooltip="One model at two temperatures (or two models): per-step KL and top-1 agreement",
        ),
        Binding("w", "app.open_screen('tokenize')", "Tokens", show=False, tooltip="How a sentence splits into tokens, in many languages"),
        Binding("a", "app.open_screen('attribution')", "Direct logit attribution of the next token's candidates", show=False),
        Binding(
            "x",
            "ablate('head')",
            "Knock out the shown head (the whole layer's attention when showing the mean); again: restore",
            show=False,
        ),
        Binding("X", "ablate('mlp')", "Knock out the shown layer's MLP; again: restore", show=False),
        Binding("0", "clear_ablations", "Restore every knocked-out component", show=False),
        Binding("h", "app.open_screen('all_heads')", "Every layer × head of the context at a glance, with its statistics", show=False),
        Binding(
            "V",
            "app.open_screen('representations')",
            "Representations: each token's vector per layer in 2-D; where each token was decided",
            show=False,
        ),
    ]
    EXPLANATIONS = {
        "parameters-pane": (
            "Next token's settings. temperature (t/T) divides the logits: <1 sharper, >1 flatter, 0 = greedy. "
            "top-k (k/K): the k likeliest; top-p (p/P): the fewest likeliest whose p add up to ≥ p, after "
            "temperature. block, head: what Attention shows; ablated: knocked out (x X; 0 restores)."
        ),
        "generation-pane": (
            "The prompt (dimmed) and new tokens; tints (no colour: underlines) mark where tokens end; in colour, "
            "red (rare) → green (likely) p. italic: forced (1–9); ↵ newline, □ part of a character. p: each token's "
            "p at T=1; ent≤: entropy of what it was drawn from (after T·k·p; max ln V). ← →: a token's step."
        ),
        "candidates-pane": (
            "Likeliest next tokens (· a space). p before: the model's p (T=1); bar and after: once T, top-k, "
            "top-p reshape it (drawn from these). cut: removed. chance: 1/V, a uniform guess. 1–9 force one (▸ "
            "chosen). Ablated (x, X): ablated │ intact p, KL."
        ),
        "attention-pane": (
            "Row = the token attending (query), column = the one it looks at (key); rows sum to 1; brighter (no colour: "
            "denser ░▒▓█) = more. · above the diagonal: the causal mask. ◀ the row choosing the token. max-pooled: a cell "
            "holds several tokens' largest. [ ] : block, { } head or mean, % scale."
        ),
        "layers-pane": (
            "The residual stream at the newest token: emb (token embedding; GPT-2 adds a position one), then after block 1…L. ⠒ "
            "norm ÷ the largest. × cos(l, l-1): cosine with the step before, 1 = same direction (0.96 ≈ 16°: a "
            "long stream turns slowly). lens→next: ln_f + unembedding after each block, its guess."
        ),
    }
    PALETTE = [  # (title, what it does, action): the command palette's entries for this screen
        ("Ablate the head", "Knock out the shown head, or the layer's attention for the mean (x)", "ablate('head')"),
        ("Ablate the MLP", "Knock out the shown layer's MLP (X)", "ablate('mlp')"),
        (
            "Mean ablation on/off",
            "Replace knocked-out components by their mean over every position of the context (0 included) instead of zero",
            "ablation_mode",
        ),
        ("Clear ablations", "Restore every knocked-out component (0)", "clear_ablations"),
        ("Step one token", "Generate the next token (n)", "step"),
        ("Run / pause", "Generate up to max new tokens more; again to pause (g)", "run_pause"),
        ("Undo", "Remove the last generated token (backspace)", "undo"),
        ("Reset", "Back to the prompt, generator re-seeded (r)", "reset"),
        ("Open a model", "Pick another model from what tfund models lists; loaded while this one stays (O)", "app.pick_model"),
        ("Block lab", "The NumPy block stack and the parity check (b)", "app.open_screen('block_lab')"),
        ("Compare", "Two models, or one at two temperatures, side by side (c)", "app.open_screen('compare')"),
        ("Tokenization", "How a sentence splits into tokens, in many languages (w)", "app.open_screen('tokenize')"),
        ("Attribution", "Each layer's and head's share of the next token's logit (a)", "app.open_screen('attribution')"),
        ("All heads", "Every layer × head of the context at a glance, with its statistics (h)", "app.open_screen('all_heads')"),
        (
            "Representations",
            "Each token's residual vector per layer in 2-D; where each token was decided (V)",
            "app.open_screen('representations')",
        ),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.pacing = FramePacing(self, session)
        self.subtitles: dict[str, str] = {}  # pane selector (+ " title") -> the border subtitle (title) last set

    def compose(self) -> ComposeResult:
        with Horizontal(id="top"):
            with pane("Parameters", "parameters-pane"):
                yield ParametersView(id="parameters")
            with pane("Generation · i edits the prompt", "generation-pane"):
                yield PromptLine(id="prompt-row")
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
        self.query_one(PromptLine).close(self.session.prompt)
        self.query_one("#generation", GenerationView).focus()
        self.show_loading(True)
        self.set_status(f"loading {self.session.options.model_name}…")
        self.set_interval(1 / REDRAW_CHECKS_PER_SECOND, self.pacing.redraw_if_needed)
        self.redraw()

    def on_unmount(self) -> None:
        self.session.close()

    def on_resize(self) -> None:
        self.set_class(self.size.width < NARROW_WIDTH, "-narrow")
        self.set_class(self.size.width >= WIDE_WIDTH, "-wide")

    @property
    def drawable(self) -> bool:
        """False while the app shuts down: late engine messages must not touch removed widgets."""
        return self.is_mounted and self.app.is_running

    def show_loading(self, loading: bool) -> None:
        if self.drawable:
            for selector in ("#candidates", "#attention", "#layers"):
                self.query_one(selector).loading = loading

    def set_status(self, text: str) -> None:
        """The Generation pane's subtitle: "ready · 65 new · 172 tok/s"; parts that do not fit are left out whole
        from the end, never cut into a number."""
        if self.drawable:
            room = self.query_one("#generation-pane").outer_size.width - SUBTITLE_MARGIN
            self.set_subtitle("#generation-pane", fit_parts(text.split(" · "), room) if room > 0 else text)

    def set_subtitle(self, selector: str, text: str) -> None:
        """Setting a border subtitle repaints the whole pane, children included: only when it changes."""
        if self.subtitles.get(selector) != text:
            self.subtitles[selector] = text
            self.query_one(selector).border_subtitle = text

    def set_title(self, selector: str, text: str) -> None:
        """The border title, like set_subtitle: only when it changes."""
        if self.subtitles.get(f"{selector} title") != text:
            self.subtitles[f"{selector} title"] = text
            self.query_one(selector).border_title = text

    def show_progress(self) -> None:
        self.set_status(self.session.status())

    # ---- drawing -----------------------------------------------------------------------------
    def draw_text(self) -> bool:
        """The Generation pane's text (with a token chosen and not yet read in); True if a row is to be repainted."""
        positions, chosen, selected = self.session.transcript.positions, self.pacing.chosen, self.session.selected_token
        shown = positions if chosen is None else [*positions, chosen]
        return self.query_one(GenerationView).show(shown, selected, self.app.shade, follow=selected is None)

    def redraw(self) -> None:
        self.pacing.redrawn()
        if not self.drawable:
            return
        session = self.session
        if session.engine.running:
            self.show_progress()  # the token count and tok/s, with the tokens (not on every batch of the engine's)
        transcript, info, layer, head = session.transcript, session.model_info, session.shown_layer, session.shown_head
        self.query_one(ParametersView).show(
            parameter_lines(session.model_name, info.device if info else "…", session.settings, layer, head)
            + ablation_lines(session.ablations, session.ablation_mode)
        )
        self.draw_text()
        self.query_one(Timeline).show(transcript.positions, max_entropy(info.vocab_size) if info else None)
        travel = session.travelled()
        if travel is None:
            self.query_one(CandidatesView).show(transcript.candidates, transcript.ablation)
            room = self.query_one("#candidates-pane").outer_size.width - SUBTITLE_MARGIN
            self.set_subtitle("#candidates-pane", candidates_subtitle(transcript.ablation, room))
        else:
            index, position = travel
            step = position.step
            heading = travel_heading(index, len(transcript.positions), position)
            if step is None and index > 0:
                heading += " · computing its prediction…"
            self.query_one(CandidatesView).show(step.candidates if step else [], None, (position.token_id, position.piece), heading)
            self.set_subtitle("#candidates-pane", "▸ chosen · p before │ after" if step else "end: back to live")
        lens, norms, cosines, chosen = session.shown_layers()
        self.query_one(LayersView).show(norms, cosines, lens, chosen)
        knocked = session.shown_ablations()  # Layers shows the ablated model, as Candidates does; Attention the intact one
        self.set_title("#layers-pane", model_title("Layers", knocked, ablated=True))
        self.set_title("#attention-pane", model_title("Attention", knocked, ablated=False))
        if info is not None and transcript.positions:
            grid = head_grid(transcript.rows, layer, head)  # [T, T]
            self.query_one(AttentionMap).show(grid, transcript.pieces, session.highlighted_token(), self.app.shade, session.colour_scale)
            group = kv_group(head, info.n_head, info.n_kv_heads)
            self.set_subtitle("#attention-pane", f"{block_head_text(layer, head, group)} · {session.colour_scale} scale")

    def action_colour_scale(self) -> None:
        """%: the attention map's next colour scale (tui.heatmap.SCALES), here and on the all-heads screen."""
        self.session.colour_scale = SCALES[(SCALES.index(self.session.colour_scale) + 1) % len(SCALES)]
        self.redraw()

    def figures(self) -> dict:
        """What `e` saves besides the screenshot (engine.views.export.export_bundle's arguments)."""
        session, transcript = self.session, self.session.transcript
        shown = session.model_info is not None and transcript.positions
        return dict(
            attention=head_grid(transcript.rows, session.shown_layer, session.shown_head) if shown else None,  # [T, T]
            tokens=transcript.pieces,
            layer=session.shown_layer,
            head=session.shown_head,
            candidates=list(transcript.candidates),
            trace_lines=session.trace.lines(),
        )

    # ---- messages from the engine thread: the session takes each one in, then it is drawn ----
    def on_load_progress(self, message: messages.LoadProgress) -> None:
        self.set_status(f"loading {message.step}/{message.total}: {message.text}…")

    def on_model_ready(self, message: messages.ModelReady) -> None:
        self.became_ready(message)
        self.set_status(self.session.ready_status())

    def on_model_kept(self, message: messages.ModelKept) -> None:
        """The picked model could not be opened: the one in use stays; say why."""
        self.session.engine.say(message.why, "error")
        self.set_status(self.session.idle_status())

    def on_replay_ready(self, message: messages.ReplayReady) -> None:
        self.query_one("#generation-pane").border_title = "Generation · a recording"  # no prompt to edit
        self.became_ready(message)
        if message.note:
            self.notify(f"Showing what was recorded: {message.note}.", timeout=8)

    def became_ready(self, message: messages.ModelReady | messages.ReplayReady) -> None:
        self.session.take_model(message)
        self.set_subtitle("#parameters-pane", self.session.engine_label())  # asking the BLAS library takes a millisecond: once
        if self.session.model_info is not None:
            self.query_one("#candidates-pane").border_title = f"Candidates · 1/V {chance_text(self.session.model_info.vocab_size)}"
        self.context_changed()
        self.show_loading(False)
        self.redraw()

    def on_context_ready(self, message: messages.ContextReady) -> None:
        self.session.take_context(message)
        self.context_changed()

    def context_changed(self) -> None:
        self.set_status(self.session.idle_status())
        self.pacing.redraw_soon()  # a reset, a new prompt or a replay step is drawn as it arrives

    def on_token_chosen(self, message: messages.TokenChosen) -> None:
        """A key's token, drawn before the model reads it in (most of the step): on screen that much sooner."""
        token = Position(message.token_id, message.text, NOT_READ_IN, True, message.p_raw, message.forced)
        self.pacing.token_chosen(token, message.shown)

    def on_tokens_generated(self, message: messages.TokensGenerated) -> None:
        self.session.take_tokens(message)
        self.pacing.text_changed()

    def on_token_undone(self, message: messages.TokenUndone) -> None:
        self.session.take_undo(message)
        self.pacing.text_changed()

    def on_candidates_previewed(self, message: messages.CandidatesPreviewed) -> None:
        self.session.take_candidates(message)
        self.pacing.redraw_soon()

    def on_step_recalled(self, message: messages.StepRecalled) -> None:
        if self.session.take_step(message):
            self.pacing.redraw_soon()

    def on_engine_note(self, message: messages.EngineNote) -> None:
        self.session.engine.say(message.text, message.severity)

    def on_command_done(self, message: CommandDone) -> None:
        self.session.take_done(message)
        self.pacing.command_done()
        if isinstance(message.command, Run):
            self.show_progress()
            self.redraw()

    def on_parity_computed(self, message: messages.ParityComputed) -> None:
        self.session.take_parity(message)  # for the block lab, which asked for it

    def on_engine_failed(self, message: messages.EngineFailed) -> None:
        if message.loading:
            self.show_loading(False)
            self.set_status("no model: see the error")
        title = "Could not load the model" if message.loading else "The engine stopped"
        self.app.show_error(title, self.session.error_text(message.error))
