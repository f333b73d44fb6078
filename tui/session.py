"""The session: what one tfund-tui run knows, and the commands that change it. The app owns it.

State: the settings the next token uses (one value), the prompt, the UI's copy of the context
(`transcript`), the trace, the loaded model (`model`) and its description (`model_info`), the
ablations, the token whose step is shown (time travel), the block and head the Attention pane shows,
and the parity check. The engine controller (tui/controller.py) runs the sampler on its own thread;
its messages go to the main screen, which hands each one to the session (`take_*`), then draws.

Screens are given the session: they read its state and call its commands, which send the engine a
command carrying every setting it needs (the state changes once the engine took it; `changed` tells
the main screen to redraw). A screen that needs a result asks here: the block lab's parity comes back
to it as a ParityComputed message; the attribution screen's worker gets the model's Inspector; the
all-heads screen's enter sets the head shown. Nothing here draws or opens a screen.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from textual.message_pump import MessagePump

from engine.events import LensEntry, counted, dropped_prompt_note
from engine.model.interventions import Ablation
from engine.runtime.loading import is_out_of_memory, out_of_memory_sentence, release_memory
from tui.captions import error_sentence
from tui.commands import Branch, Force, Load, Parity, Preview, Recall, Reset, Run, SetAblations, SetPrompt, Step, Undo
from tui.controller import CommandDone, EngineController
from tui.handlers import Loader, TraceLog
from tui.messages import (
    CandidatesPreviewed,
    ContextReady,
    ModelReady,
    ParityComputed,
    ReplayReady,
    StepRecalled,
    TokensGenerated,
    TokenUndone,
)
from tui.options import SessionOptions
from tui.transcript import Position, Transcript


class Session:
    def __init__(self, options: SessionOptions, post, notify) -> None:
        """`post(message)`: where the engine thread's messages go (thread-safe); `notify`: the app's, for refusals."""
        self.options = options
        self.settings = replace(options.config)  # what the next token will use (the one copy)
        self.prompt = options.prompt
        self.transcript = Transcript()
        self.trace = TraceLog(options.trace)
        self.engine = EngineController(post, Loader(self.trace, replaying=options.replay is not None), notify)
        self.model = None  # engine.runtime.loading.LoadedModel once ready (compare, tokenization, attribution start from it)
        self.model_info = None  # engine.events.ModelInfo once ready: its name, size, device and engine
        self.replay_steps: tuple[int, bool] | None = None  # replay: (steps recorded, recomputed?)
        self.replay_at: tuple[int, int, int] | None = None  # replay: (steps applied, session shown, sessions)
        self.selected_token: int | None = None  # time travel: the token whose step is shown; None: the live next token
        self.shown_layer, self.shown_head = 0, None  # the block and head (None: the mean) the Attention pane shows
        self.colour_scale = "log"  # the attention maps' colour scale, one of tui.heatmap.SCALES (l cycles them)
        self.ablations: tuple = ()  # engine.model.interventions.Ablation knocked out for the next tokens
        self.ablation_mode = "zero"  # or "mean": the component's mean over the context
        self.parity: tuple[dict | None, str | None] = (None, None)  # (report, error) of the parity check
        self.parity_reader: MessagePump | None = None  # the screen that asked for the parity (it hears back by a message)
        self.inspector_of: tuple | None = None  # (model, its Inspector) once the attribution screen needed one
        self.load_started = time.perf_counter()
        self.run_clock: tuple[float, float, int] | None = None  # (g pressed, last token shown, tokens since): the run's tok/s
        self.changed = False  # a command changed what the main screen shows: it redraws at its next check (tui/pacing.py)

    # ---- starting and ending -----------------------------------------------------------------
    def start_loading(self) -> None:
        o = self.options
        self.engine.send(Load(o.model_source, o.prompt, self.settings, o.device, o.engine, o.threads, o.allow_pickle, o.replay))

    def switch_model(self, source: str) -> bool:
        """Open another model (the model picker): loaded on the engine thread while this one stays in use; the old
        one is let go once the new one is ready (ModelReady), or kept, with the reason said, if it fails."""
        if self.model_info is not None and source == self.model_info.name:
            self.engine.say(f"{source} is the model in use already.")
            return False
        o = self.options
        sent = self.engine.send(Load(source, self.prompt, self.settings, o.device, o.engine, o.threads, o.allow_pickle))
        if sent:
            self.load_started = time.perf_counter()  # "ready in …" counts this load
        return sent

    def close(self) -> None:
        self.engine.close()  # a run in progress ends before its next token: exiting does not wait for it
        self.trace.close()

    # ---- what is shown -----------------------------------------------------------------------
    def travelled(self) -> tuple[int, Position] | None:
        """Time travel: (index, position) of the selected token, or None for the live next token."""
        if self.selected_token is None or self.selected_token >= len(self.transcript.positions):
            return None
        return self.selected_token, self.transcript.positions[self.selected_token]

    def shown_layers(self) -> tuple[Sequence[LensEntry], np.ndarray, np.ndarray, int | None]:
        """(lens, norms, cosines, the token chosen then or None) that the Layers pane shows: time travelling, the
        step shown's; else the live next token's, from the model the candidates are drawn from (ablated or not)."""
        travel = self.travelled()
        if travel is None:
            return (*self.transcript.layers(), None)
        position = travel[1]
        if position.step is None:
            return [], np.zeros(0, np.float32), np.zeros(0, np.float32), position.token_id
        return position.step.lens, position.step.norms, position.step.cosines, position.token_id

    def shown_ablations(self) -> tuple[str, ...]:
        """The components knocked out in the step shown (engine labels, "L4.mlp"): what the Candidates and
        Layers panes show is that ablated model's, while the Attention pane's rows are the intact model's."""
        travel = self.travelled()
        if travel is None:
            ablation = self.transcript.ablation
            return () if ablation is None else ablation.labels
        step = travel[1].step
        return () if step is None else step.ablated

    def highlighted_token(self) -> int | None:
        """The attention row of the step shown: the newest token's (it predicts the next one), or, time
        travelling, the row of the token before the selected one (the position that chose it)."""
        n_tokens = len(self.transcript.positions)
        if n_tokens == 0:
            return None
        return n_tokens - 1 if self.selected_token is None else max(0, self.selected_token - 1)

    def status(self) -> str:
        """The Generation pane's status line: pausing, running, or idle_status."""
        if self.engine.pausing:
            return "pausing…"
        if self.engine.running and self.replay_steps is None:
            return f"running · {self.transcript.n_generated} new{self.timing()} · g pauses"
        return self.idle_status()

    def idle_status(self) -> str:
        """Ready with the tokens generated, or a replay's place."""
        if self.replay_steps is not None:
            n_steps, recomputes = self.replay_steps
            applied, session, n_sessions = self.replay_at or (self.transcript.n_generated, 1, 1)
            which = f" · session {session}/{n_sessions}" if n_sessions > 1 else ""
            return f"replay {applied}/{n_steps}{which} · {'recomputed' if recomputes else 'as recorded'}"
        return f"ready · {self.transcript.n_generated} new{self.timing()}{self.gguf_text()}"

    def timing(self) -> str:
        """The last run's tokens per second (wall clock, as the user saw them), else the last token's engine time."""
        last_ms = self.transcript.last_ms
        if self.options.deterministic or (last_ms is None and self.run_clock is None):
            return ""
        if self.run_clock is None:
            return f" · last token {last_ms:.1f} ms"
        started, last, n_tokens = self.run_clock
        return f" · {n_tokens / (last - started):.0f} tok/s" if n_tokens and last > started else ""

    def ready_status(self) -> str:
        """The status once loaded: "ready in 0.7 s" (no timing in deterministic mode), and gguf_text."""
        ready = "ready" if self.options.deterministic else f"ready in {time.perf_counter() - self.load_started:.1f} s"
        return ready + self.gguf_text()

    def gguf_text(self) -> str:
        """For a model read from a GGUF, where it came from and its file type (" · smollm2 Q4_1"); else ""."""
        info = self.model_info
        return f" · {info.source} {info.file_type}" if info is not None and info.source else ""

    def error_text(self, error: BaseException) -> str:
        """What the error modal says about an engine error: out of memory on this device, or the error itself."""
        if is_out_of_memory(error):
            return out_of_memory_sentence(self.model_info.device if self.model_info else "the device")
        return error_sentence(error)

    @property
    def model_name(self) -> str:
        """The name of the model in use (the one the app started with until it is loaded)."""
        return self.model_info.name if self.model_info is not None else self.options.model_name

    def engine_label(self) -> str:
        """The engine computing the tokens ("numpy · 1 thread"); on a GPU, "torch"."""
        info = self.model_info
        if info is None or not info.engine:
            return ""
        threads = self.model.engine_threads if info.device == "cpu" else None
        return info.engine if threads is None else f"{info.engine} · {counted(threads, 'thread')}"

    # ---- commands: settings and ablations ----------------------------------------------------
    def change_settings(self, **changes) -> None:
        """New settings for the next token, once the engine took them."""
        new = replace(self.settings, **changes)
        new.validate()
        if new != self.settings and self.engine.send(Preview(new)):
            self.settings = new
            self.changed = True

    def set_ablations(self, ablations: tuple, mode: str) -> None:
        if self.engine.send(SetAblations(ablations, mode, self.settings)):
            self.ablations, self.ablation_mode = ablations, mode
            self.changed = True

    def toggle_ablation(self, kind: str) -> None:
        """Knock out (or restore) the shown head, the layer's attention when the mean is shown, or ("mlp") its MLP."""
        if self.model_info is None:
            return
        if kind == "mlp":
            component = Ablation(self.shown_layer, "mlp")
        else:
            component = (
                Ablation(self.shown_layer, "attn") if self.shown_head is None else Ablation(self.shown_layer, "head", self.shown_head)
            )
        self.set_ablations(tuple(sorted(set(self.ablations) ^ {component})), self.ablation_mode)  # pressed again: restored

    def show_head(self, layer: int, head: int | None) -> None:
        """The Attention pane shows this block and head (the all-heads screen's enter); drawn when the main screen is back."""
        self.shown_layer, self.shown_head = layer, head
        self.changed = True

    # ---- commands: generation ----------------------------------------------------------------
    def back_to_live(self) -> None:
        """Stepping ends time travel: the panes follow the newest token again."""
        if self.selected_token is not None:
            self.selected_token = None
            self.changed = True

    def step(self) -> None:
        self.back_to_live()
        if self.engine.send(Step(self.settings)):
            self.run_clock = None

    def run_pause(self) -> None:
        self.back_to_live()
        if not self.engine.running:
            now = time.perf_counter()
            self.run_clock = (now, now, 0)
        self.engine.toggle_run(Run(self.settings, self.settings.max_new_tokens))

    def pick(self, rank: int) -> None:
        """Force a candidate of the live next token; time travelling, branch: take it instead of the token chosen then."""
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

    def undo(self) -> None:
        self.back_to_live()
        self.engine.send(Undo(self.settings))

    def reset(self) -> None:
        if self.engine.send(Reset(self.settings)):
            self.selected_token = None

    def set_prompt(self, text: str) -> bool:
        """A new prompt (the context starts again from it); False, after saying so, when the text is empty."""
        if not text.strip():
            self.engine.say("The prompt is empty: type the text to continue (escape keeps the old prompt).", "warning")
            return False
        if self.engine.send(SetPrompt(text, self.settings)):
            self.prompt = text
            self.selected_token = None
        return True

    def select_token(self, index: int) -> None:
        """Show the step that chose token `index` (past the newest: the live next token); a prompt token's
        step is asked of the engine the first time (StepRecalled brings it)."""
        self.selected_token = None if index >= len(self.transcript.positions) else index
        travel = self.travelled()
        if travel is not None and travel[1].step is None and travel[0] > 0:
            self.engine.send(Recall(travel[0], travel[1].token_id))

    # ---- requests of other screens -----------------------------------------------------------
    def needs_model(self) -> bool:
        """True (after saying so) when no model is loaded: before loading ends, or a replay without one."""
        if self.model is None:
            self.engine.say("This needs the model: it is not loaded.", "warning")
        return self.model is None

    def request_parity(self, reader: MessagePump, recheck: bool = False) -> None:
        """The parity figure for `reader` (the block lab): checked once per model, again on request; the
        answer comes to it as ParityComputed."""
        self.parity_reader = reader
        if recheck:
            self.parity = (None, None)
        if self.parity == (None, None) and self.model_info is not None:
            self.engine.send(Parity(tuple(p.token_id for p in self.transcript.positions if not p.generated)))

    def inspector(self) -> Any:
        """The loaded model's Inspector on its own engine, built on first use (on the attribution screen's worker) and kept."""
        from engine.runtime.interventions import Inspector

        model = self.model
        if self.inspector_of is None or self.inspector_of[0] is not model:
            self.inspector_of = (model, Inspector(model))
        return self.inspector_of[1]

    # ---- the engine's messages, taken in (the main screen draws after each) ---------------------
    def take_model(self, message: ModelReady | ReplayReady) -> None:
        switched = self.model is not None
        if isinstance(message, ModelReady):
            self.model, self.model_info = message.model, message.info
            # another model (the picker): what belonged to the old one goes, so its weights can be freed
            self.ablations, self.parity, self.inspector_of = (), (None, None), None
            self.shown_layer = min(self.shown_layer, message.info.n_layer - 1)
            self.shown_head = None if self.shown_head is None else min(self.shown_head, message.info.n_head - 1)
        else:
            self.model = message.model
            self.model_info = message.model.info if message.model else None
            self.replay_steps = (message.n_steps, message.recomputes)
        self.take_context(message.context)
        if switched:  # the old model's weights and the old context's attention rows are no longer held
            release_memory()
        reader = self.parity_reader
        if reader is not None and reader.is_current:  # the block lab asked before the model was there
            self.request_parity(reader)

    def take_context(self, message: ContextReady) -> None:
        self.transcript.reset_to(message)
        if message.prompt_dropped:  # a prompt longer than the window: the learner is told what was cut
            room = len(message.token_ids)
            note = dropped_prompt_note(room + message.prompt_dropped, message.prompt_dropped, room)
            self.engine.say(f"{note[0].upper()}{note[1:]}.")
        self.selected_token = None  # a new context: its tokens are not those selected
        self.replay_at = message.replay_at
        if self.replay_steps is not None:
            self.settings = message.config  # the Parameters pane shows the recorded settings

    def take_tokens(self, message: TokensGenerated) -> None:
        for event in message.events:
            self.transcript.append(event)
        if self.run_clock is not None and self.engine.running:
            started, _, n_tokens = self.run_clock
            self.run_clock = (started, time.perf_counter(), n_tokens + len(message.events))
        if message.rows is not None:
            self.transcript.replace_rows(message.rows)
            slid_out = sum(event.dropped for event in message.events)
            self.engine.say(f"The window is full: the oldest {slid_out} tokens slid out; the model now sees the last {len(message.rows)}.")
        self.transcript.set_candidates(message.candidates, message.config, message.ablation)

    def take_undo(self, message: TokenUndone) -> None:
        self.transcript.pop(message.lens, message.norms, message.cosines)
        self.transcript.set_candidates(message.candidates, message.config, message.ablation)

    def take_candidates(self, message: CandidatesPreviewed) -> None:
        self.transcript.set_candidates(message.candidates, message.config, message.ablation)

    def take_step(self, message: StepRecalled) -> bool:
        """True when the recalled step was kept (its token is still there)."""
        return self.transcript.remember_step(message.index, message.token_id, message.step)

    def take_parity(self, message: ParityComputed) -> None:
        self.parity = (message.report, message.error)
        if self.parity_reader is not None and self.parity_reader.is_current:
            self.parity_reader.post_message(ParityComputed(message.report, message.error))

    def take_done(self, message: CommandDone) -> None:
        self.engine.done(message)
