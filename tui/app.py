"""The tfund-tui app: the engine driven from thread workers, the panes redrawn from plain data.

Threads: the model loads in a daemon thread (quitting never waits for it); every sampler call (step,
force, undo, reset, a new prompt, a preview after a settings change, a run, the parity check) is an
"engine job" in a thread worker, and jobs run one at a time from a queue, so the sampler is never
called from two threads at once. Threads only post messages; the app applies them to its Transcript
and redraws on a timer (at most 30 times a second), so a fast GPU in run mode cannot flood the
terminal. torch and transformers are imported in the loading thread: the first frame never waits
for them.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from engine.events import SamplingConfig
from engine.runtime.loading import ModelLoadError, is_out_of_memory, out_of_memory_sentence  # light: torch only when loading
from engine.views.export import ExportError, export_bundle
from engine.views.replay import ReplayError
from engine.views.trace import TraceError
from tui.heatmap import head_grid
from tui.messages import (
    CandidatesPreviewed,
    ContextReady,
    EngineIdle,
    EngineNote,
    ExportWritten,
    JobFailed,
    LoadProgress,
    ModelReady,
    ParityComputed,
    ReplayReady,
    TokensGenerated,
    TokenUndone,
)
from tui.replaying import REPLAY_JOBS, REPLAY_STEPS_PER_SECOND, mark_recorded, replay_context, replay_status, start_replay
from tui.screens.block_lab import BlockLabScreen
from tui.screens.compare import CompareScreen
from tui.screens.error import ErrorScreen
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.screens.tokenize import TokenizeScreen
from tui.transcript import Transcript

DEFAULT_PROMPT = "In a small village,"
REDRAWS_PER_SECOND = 30  # run mode coalesces token events into at most this many redraws
TOP_N = 10  # candidates kept per token (the pane shows the first nine: digits 1–9)
PARITY_GREEDY_TOKENS = 20  # greedy tokens compared NumPy vs torch in the block lab
REFUSED_WHILE_RUNNING = ("step", "force", "undo", "reset", "prompt")  # refused (not queued) while a run goes on
JOB_TITLES = {"load": "Could not load the model", "engine": "The engine stopped", "export": "Could not save the figures"}
DEFAULT_EXPORT_DIR = "tfund-exports"
MAX_QUEUED_JOBS = 16  # keys pressed faster than the engine answers wait here; beyond this they are dropped
NOTE_SECONDS = 3  # how long a notification about a refused key stays (and is not repeated)
REPLAY_REFUSAL = "This is a replay of a recording: n/⌫ step through it, g plays, r rewinds."


class TfundApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "tfund"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),  # what a terminal user expects; the trace is flushed on exit
        Binding("question_mark", "help", "Help", key_display="?", tooltip="This list of keys"),
        Binding("e", "export", "Save", tooltip="Save the figures: screen (SVG), attention, candidates, trace"),
    ]

    def __init__(
        self,
        model: Any = "toy",
        prompt: str = DEFAULT_PROMPT,
        config: SamplingConfig | None = None,
        device: str = "auto",
        engine: str = "torch",
        trace: Any = None,
        palette: str | None = None,
        deterministic: bool = False,
        allow_pickle: bool = False,
        replay: Any = None,
        export_dir: str | os.PathLike = DEFAULT_EXPORT_DIR,
    ) -> None:
        super().__init__()
        self.model = model  # a name/path for load_model, or an already loaded engine.runtime.loading.LoadedModel
        self.model_name = model if isinstance(model, str) else model.name
        self.prompt = prompt
        self.settings = replace(config) if config else SamplingConfig()  # what the next token will use
        self.device = device
        self.engine = engine
        self.trace = trace  # engine.views.trace.TraceWriter or None; written from engine jobs only
        self.trace_lock = threading.Lock()  # closing at exit must not race a job's last write
        self.palette = palette  # "color", "shade" or None to follow the terminal
        self.deterministic = deterministic  # hide timings (snapshot tests)
        self.allow_pickle = allow_pickle  # let load_model read pickle weights the user trusts
        self.replay_path = Path(replay) if replay is not None else None  # a trace to replay instead of generating
        self.replay: Any = None  # engine.views.replay.ReplaySession once set up; only engine jobs call it
        self.export_dir = Path(export_dir)
        self.trace_records: list[dict | str] = []  # this session's trace lines (kept for `e` even without --trace)
        self.transcript = Transcript()
        self.loaded: Any = None  # engine.runtime.loading.LoadedModel once ready
        self.sampler: Any = None  # engine.runtime.sampler.Sampler once ready; only engine jobs call it
        self.info = None  # engine.events.ModelInfo once ready
        self.parity: tuple[dict | None, str | None] = (None, None)  # (report, error) of the parity check
        self.pending: deque[tuple[str, Any]] = deque()  # engine jobs waiting for the running one
        self.last_said: tuple[str, str, float] = ("", "", 0.0)  # (text, severity, monotonic time) of the last refusal note
        self.engine_busy = False
        self.running = False  # a run (`g`) is in progress
        # Pausing a run sets this event (the thread sees it before its next token). The worker itself is
        # never cancelled: a worker cancelled before its thread starts never runs, so it would never
        # post EngineIdle and the queue would stall.
        self.stop_run = threading.Event()
        self.needs_redraw = False
        self.next_redraw_at = 0.0  # perf_counter time before which the timer does not redraw
        self.main_screen = MainScreen()
        self.load_started = time.perf_counter()

    # ---- start-up ----------------------------------------------------------------------------
    def get_default_screen(self) -> Screen:
        return self.main_screen

    @property
    def shade(self) -> bool:
        """Shade characters instead of colour: asked for, NO_COLOR, or a 16-colour terminal."""
        if self.palette is not None:
            return self.palette == "shade"
        return self.no_color or self.console.color_system in (None, "standard", "windows")

    def on_ready(self) -> None:
        """The first frame is on screen (the main screen shows its loading state): now load."""
        self.set_interval(1 / REDRAWS_PER_SECOND, self.redraw_if_needed)
        threading.Thread(target=self.load_in_background, name="tfund-load", daemon=True).start()

    def on_unmount(self) -> None:
        self.stop_run.set()  # a run in progress ends before its next token: exiting does not wait for it
        with self.trace_lock:
            if self.trace is not None:
                self.trace.close()
                self.trace = None

    def load_in_background(self) -> None:
        """A daemon thread, not a worker: quitting while torch imports never waits for it."""
        try:
            self.load_engine()
        except Exception as error:
            self.post_message(JobFailed("load", error))

    def load_engine(self) -> None:
        """Runs in the loading thread: import torch, load the model, read the prompt; progress as messages."""
        if self.replay_path is not None:
            self.load_replay()
            return
        loaded = self.load_model_named(self.model) if isinstance(self.model, str) else self.model
        from engine.runtime.sampler import Sampler

        self.post_message(LoadProgress(3, 4, "building the sampler"))
        sampler = Sampler(loaded, self.settings, engine=self.engine, top_n=TOP_N)
        self.post_message(LoadProgress(4, 4, "reading the prompt"))
        sampler.set_prompt(self.prompt)
        self.write_trace(record={"session": {"model": self.model_name, "prompt": self.prompt}})
        context = ContextReady.of_sampler(sampler)
        self.post_message(ModelReady(loaded, sampler, sampler.info, context))

    def load_model_named(self, name: str) -> Any:
        """Import torch and transformers, then load `name` (in the loading thread)."""
        self.post_message(LoadProgress(1, 4, "importing torch and transformers"))
        import torch  # noqa: F401  (the slow imports, named so the progress line is honest)
        import transformers

        transformers.utils.logging.disable_progress_bar()  # a bar on stderr would draw over the UI

        from engine.runtime.loading import load_model

        self.post_message(LoadProgress(2, 4, f"loading {name}"))
        device = "cpu" if self.engine == "numpy" and self.device == "auto" else self.device
        return load_model(name, device=device, allow_pickle=self.allow_pickle)

    def load_replay(self) -> None:
        """Replay mode: load the model to recompute the recording; without it, show what was recorded."""
        from engine.views.replay import read_trace

        recording = read_trace(self.replay_path)
        with self.trace_lock:  # `e` saves the recording itself as the session trace
            self.trace_records = [line for line in self.replay_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        model = self.model
        replay, loaded, note = start_replay(
            recording, lambda: self.load_model_named(model) if isinstance(model, str) else model, self.engine
        )
        self.post_message(LoadProgress(4, 4, "replaying the recording"))
        self.post_message(ReplayReady(loaded, replay, replay_context(replay), note))

    def on_load_progress(self, message: LoadProgress) -> None:
        self.main_screen.set_status(f"loading {message.step}/{message.total}: {message.text}…")

    def on_model_ready(self, message: ModelReady) -> None:
        self.loaded, self.sampler, self.info = message.loaded, message.sampler, message.info
        self.apply_context(message.context)
        self.main_screen.show_loading(False)
        took = "" if self.deterministic else f" in {time.perf_counter() - self.load_started:.1f} s"
        self.main_screen.set_status(f"ready{took}")
        self.redraw_now()
        if isinstance(self.screen, BlockLabScreen):
            self.screen.show_parity()

    def on_replay_ready(self, message: ReplayReady) -> None:
        self.loaded, self.replay = message.loaded, message.replay
        self.info = message.loaded.info if message.loaded else None
        self.settings = message.context.config  # the Parameters pane shows the recorded settings
        self.apply_context(message.context)
        self.main_screen.show_loading(False)
        self.main_screen.set_status(replay_status(0, len(self.replay.steps), self.replay.recomputes))
        if message.note:
            self.notify(f"Showing what was recorded: {message.note}.", timeout=8)
        self.redraw_now()

    # ---- engine jobs: one at a time, in order ------------------------------------------------
    def say(self, text: str, severity: str = "information") -> None:
        """A notification for a refused key, not repeated while the same one is still shown (mashed keys)."""
        now = time.monotonic()
        if (text, severity) == self.last_said[:2] and now - self.last_said[2] < NOTE_SECONDS:
            return
        self.last_said = (text, severity, now)
        self.notify(text, severity=severity, timeout=NOTE_SECONDS)

    def submit(self, job: str, arg: Any = None) -> None:
        if self.sampler is None and self.replay is None:
            self.say("The model is not loaded yet.", severity="warning")
        elif self.replay is not None and job not in REPLAY_JOBS:
            self.say(REPLAY_REFUSAL)
        elif self.running and job in REFUSED_WHILE_RUNNING:
            self.say("Running — press g to pause first.")
        elif not self.engine_busy:
            self.start_job(job, arg)
        elif job in ("preview", "parity") and any(queued == job for queued, _ in self.pending):
            pass  # one queued preview shows the latest settings anyway
        elif len(self.pending) >= MAX_QUEUED_JOBS:
            self.say(f"Still working through {len(self.pending)} earlier keys; this one was dropped.", severity="warning")
        else:
            self.pending.append((job, arg))

    def start_job(self, job: str, arg: Any) -> None:
        self.engine_busy = True
        self.running = job == "run"
        if self.running and self.replay is None:
            self.main_screen.set_status(f"running · {self.transcript.n_generated} new · g pauses")
        self.stop_run = threading.Event()  # a fresh one: a pause pressed for the last run must not stop this one
        self.engine_job(job, arg, self.stop_run)

    def toggle_run(self) -> None:
        if self.running:
            self.stop_run.set()
            self.main_screen.set_status("pausing…")
        elif ("run", None) in self.pending:
            self.pending.remove(("run", None))  # g again before the queued run began: it never starts
        else:
            self.submit("run")

    def change_settings(self, **changes: Any) -> None:
        """Keys change the settings the next token uses; the next token's candidates are recomputed."""
        if self.replay_path is not None:
            self.say(REPLAY_REFUSAL)
            return
        new = replace(self.settings, **changes)
        new.validate()
        if new == self.settings:
            return
        self.settings = new
        self.needs_redraw = True
        if self.sampler is not None and not self.running:
            self.submit("preview")

    def on_engine_idle(self, message: EngineIdle) -> None:
        was_running = self.running
        self.engine_busy = self.running = False
        if was_running and self.replay is None:
            self.main_screen.set_status(self.idle_status())
        self.redraw_now()
        if self.pending:
            self.start_job(*self.pending.popleft())
        elif self.transcript.candidates_config != self.settings and self.sampler is not None:
            self.start_job("preview", None)

    def idle_status(self) -> str:
        generated = self.transcript.n_generated
        timing = "" if self.deterministic or self.transcript.last_ms is None else f" · {self.transcript.last_ms:.1f} ms/token"
        return f"ready · {generated} new{timing}"

    @work(thread=True, exit_on_error=False, group="engine")
    def engine_job(self, job: str, arg: Any, stop: threading.Event) -> None:
        """Runs in a thread: calls the sampler, posts results, never touches a widget."""
        sampler = self.sampler
        try:
            if self.replay is not None:
                self.replay_job(job, stop)
                return
            self.sync_settings(sampler)
            if job == "step":
                if not self.at_end(sampler):
                    self.emit_token(sampler, sampler.step)
            elif job == "force":
                candidates = sampler.preview()
                if arg > len(candidates):
                    self.post_message(EngineNote(f"There is no candidate {arg}."))
                elif not self.at_end(sampler):
                    self.emit_token(sampler, lambda: sampler.force(candidates[arg - 1].token_id))
            elif job == "run":
                self.run_tokens(sampler, stop)
            elif job == "undo":
                self.undo_token(sampler)
            elif job == "reset":
                sampler.reset()
                self.write_trace(record={"session": {"model": self.model_name, "prompt": sampler.prompt}})
                self.post_message(ContextReady.of_sampler(sampler))
            elif job == "prompt":
                sampler.set_prompt(arg)
                self.write_trace(record={"session": {"model": self.model_name, "prompt": arg}})
                self.post_message(ContextReady.of_sampler(sampler))
            elif job == "preview":
                self.post_message(CandidatesPreviewed(sampler.preview(), replace(sampler.config)))
            elif job == "parity":
                self.check_parity(arg)
        finally:
            self.post_message(EngineIdle(job))

    def replay_job(self, job: str, cancel: threading.Event) -> None:
        """Move through the recording; the panes get the whole context at the new position."""
        replay = self.replay
        if job == "step" and replay.forward() is None:
            self.post_message(EngineNote("The end of the recording; backspace steps back, r rewinds."))
        elif job == "undo" and replay.back() is None:
            self.post_message(EngineNote("The start of the recording."))
        elif job == "reset":
            replay.seek(0)
        elif job == "run":
            while not cancel.wait(1 / REPLAY_STEPS_PER_SECOND) and replay.forward() is not None:
                self.post_message(replay_context(replay))
            return
        self.post_message(replay_context(replay))

    def sync_settings(self, sampler: Any) -> None:
        """Hand the sampler the settings the keys chose (read from the thread; never written there)."""
        wanted = self.settings
        if wanted != sampler.config:
            sampler.set_config(**asdict(wanted))

    def at_end(self, sampler: Any) -> bool:
        if sampler.done:
            self.post_message(EngineNote("The model ended the text (end-of-text); undo or reset to go on."))
        return sampler.done

    def emit_token(self, sampler: Any, make_token) -> None:
        event = make_token()
        self.write_trace(event=event)
        self.post_tokens(sampler, [event])

    def post_tokens(self, sampler: Any, events: list) -> None:
        """Hand the UI a batch of events, with the next token's candidates under the settings now in force."""
        self.sync_settings(sampler)  # a key pressed while these tokens were computed applies to the next one
        fresh_rows = [view.attention for view in sampler.views] if any(event.slid for event in events) else None
        self.post_message(TokensGenerated(events, sampler.preview(), replace(sampler.config), fresh_rows))

    def run_tokens(self, sampler: Any, cancel: threading.Event) -> None:
        """Up to max new tokens, posted in batches at most REDRAWS_PER_SECOND times a second."""
        if self.at_end(sampler):
            return
        batch, posted_at = [], time.perf_counter()
        try:
            for event in sampler.run(sampler.config.max_new_tokens, cancel=cancel):
                self.write_trace(event=event)
                batch.append(event)
                self.sync_settings(sampler)
                if time.perf_counter() - posted_at >= 1 / REDRAWS_PER_SECOND:
                    self.post_tokens(sampler, batch)
                    batch, posted_at = [], time.perf_counter()
        finally:  # a token that fails (out of memory) must not take the tokens before it off the screen
            if batch:
                self.post_tokens(sampler, batch)
        if sampler.done:
            self.post_message(EngineNote("The model ended the text (end-of-text)."))

    def undo_token(self, sampler: Any) -> None:
        position = len(sampler.tokens) - 1
        if sampler.undo() is None:
            self.post_message(EngineNote("Nothing to undo: no generated tokens."))
            return
        self.write_trace(record={"undo": position})
        self.post_message(
            TokenUndone(sampler.last_lens, sampler.last_norms, sampler.last_cosines, sampler.preview(), replace(sampler.config))
        )

    def check_parity(self, token_ids: list[int]) -> None:
        try:
            if self.loaded.device != "cpu":
                raise ValueError(f"the parity check runs on the CPU; this model is on {self.loaded.device}")
            from engine.views.parity import parity_report

            report = parity_report(self.loaded.hf_model, self.loaded.tokenizer, token_ids, n_greedy=PARITY_GREEDY_TOKENS)
            self.post_message(ParityComputed(report, None))
        except Exception as error:  # shown in the Parity pane: the block lab stays usable
            self.post_message(ParityComputed(None, f"parity check failed: {error}"))

    def write_trace(self, event: Any = None, record: dict | None = None) -> None:
        """Append a token event (or a record such as an undo) to the session's trace and its file, if any."""
        record = event.to_json() if event is not None else record
        with self.trace_lock:
            self.trace_records.append(record)
            if self.trace is not None:
                self.trace.write_record(record)

    # ---- results from the workers ------------------------------------------------------------
    def apply_context(self, context: ContextReady) -> None:
        self.transcript.reset(
            context.token_ids,
            context.pieces,
            context.rows,
            context.prompt_len,
            context.lens,
            context.norms,
            context.cosines,
            context.candidates,
            context.config,
        )
        if context.recorded is not None:
            mark_recorded(self.transcript.positions, context.recorded)
            self.transcript.n_generated = len(context.recorded)
        self.needs_redraw = True

    def on_context_ready(self, message: ContextReady) -> None:
        self.apply_context(message)
        if self.replay is not None:
            self.settings = message.config  # the Parameters pane shows the recorded settings
            self.main_screen.set_status(replay_status(len(message.recorded), len(self.replay.steps), self.replay.recomputes))
        else:
            self.main_screen.set_status(self.idle_status())

    def on_tokens_generated(self, message: TokensGenerated) -> None:
        for event in message.events:
            self.transcript.append(event)
        if message.rows is not None:
            self.transcript.replace_rows(message.rows)
        self.transcript.set_candidates(message.candidates, message.config)
        self.needs_redraw = True
        if self.running:
            if not self.stop_run.is_set():  # else the status says "pausing…" until the thread ends
                self.main_screen.set_status(f"running · {self.transcript.n_generated} new · g pauses")
        else:
            self.main_screen.set_status(self.idle_status())

    def on_token_undone(self, message: TokenUndone) -> None:
        self.transcript.pop(message.lens, message.norms, message.cosines)
        self.transcript.set_candidates(message.candidates, message.config)
        self.main_screen.set_status(self.idle_status())
        self.needs_redraw = True

    def on_candidates_previewed(self, message: CandidatesPreviewed) -> None:
        self.transcript.set_candidates(message.candidates, message.config)
        self.needs_redraw = True

    def on_engine_note(self, message: EngineNote) -> None:
        self.say(message.text)

    def on_parity_computed(self, message: ParityComputed) -> None:
        self.parity = (message.report, message.error)
        if isinstance(self.screen, BlockLabScreen):
            self.screen.show_parity()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.show_error(event.worker.group, event.worker.error)

    def on_job_failed(self, message: JobFailed) -> None:
        self.show_error(message.group, message.error)

    def show_error(self, group: str, error: BaseException) -> None:
        if group == "load":
            self.main_screen.show_loading(False)
            self.main_screen.set_status("no model: see the error")
        one_sentence = (ModelLoadError, TraceError, ReplayError)
        if is_out_of_memory(error):
            text = out_of_memory_sentence(self.info.device if self.info else "the device")
        elif isinstance(error, one_sentence):
            text = str(error)
        else:
            text = f"{type(error).__name__}: {error}"
        self.push_screen(ErrorScreen(JOB_TITLES.get(group, "Error"), text))

    # ---- drawing -----------------------------------------------------------------------------
    def redraw_if_needed(self) -> None:
        if self.needs_redraw and time.perf_counter() >= self.next_redraw_at:
            self.redraw_now()

    def redraw_now(self) -> None:
        self.needs_redraw = False
        if self.main_screen.drawable:
            began = time.perf_counter()
            self.main_screen.redraw()
            finished = time.perf_counter()
            # a slow terminal or machine: wait as long as the redraw took, so the UI thread stays at
            # most half busy and the generation thread keeps its share of the interpreter
            self.next_redraw_at = finished + (finished - began)

    # ---- saving the figures ------------------------------------------------------------------
    def action_export(self) -> None:
        """`e`: the screen as SVG, the attention shown, the candidates and the trace, into export_dir."""
        transcript, screen = self.transcript, self.main_screen
        attention = None
        if self.info is not None and transcript.positions:
            attention = head_grid(transcript.rows, screen.view_layer, screen.view_head)  # [T, T]
        with self.trace_lock:
            trace_lines = list(self.trace_records)
        svg = self.export_screenshot(title=f"tfund · {self.model_name}")
        self.write_export(svg, attention, transcript.pieces, screen.view_layer, screen.view_head, list(transcript.candidates), trace_lines)

    @work(thread=True, exit_on_error=False, group="export")
    def write_export(self, svg, attention, tokens, layer, head, candidates, trace_lines) -> None:
        """Runs in a thread (a slow disk must not freeze the UI)."""
        try:
            paths = export_bundle(
                self.export_dir,
                svg=svg,
                attention=attention,
                tokens=tokens,
                layer=layer,
                head=head,
                candidates=candidates,
                trace_lines=trace_lines,
            )
            self.post_message(ExportWritten(paths, None))
        except ExportError as error:
            self.post_message(ExportWritten([], str(error)))

    def on_export_written(self, message: ExportWritten) -> None:
        if message.error:
            self.notify(f"Could not save the figures: {message.error}.", severity="error", timeout=8)
        else:
            folder = message.paths[0].parent if message.paths else self.export_dir
            self.notify(f"Saved {len(message.paths)} files to {folder}", title="Figures saved", timeout=8)

    # ---- screens and commands ----------------------------------------------------------------
    def request_parity(self) -> None:
        if self.sampler is not None and self.parity == (None, None):
            prompt_ids = [p.token_id for p in self.transcript.positions if not p.generated]
            self.submit("parity", prompt_ids)

    def open_block_lab(self) -> None:
        if not isinstance(self.screen, BlockLabScreen):
            self.push_screen(BlockLabScreen())

    def needs_model(self) -> bool:
        """True (after saying so) when no model is loaded: before loading ends, or a replay without one."""
        if self.loaded is None:
            self.say("This needs the model: it is not loaded.", severity="warning")
        return self.loaded is None

    def current_prompt(self) -> str:
        return self.sampler.prompt if self.sampler is not None else self.prompt

    def open_compare(self) -> None:
        if not self.needs_model() and not isinstance(self.screen, CompareScreen):
            self.push_screen(CompareScreen(self.loaded, self.current_prompt(), self.settings, self.shade))

    def open_tokenize(self) -> None:
        if not self.needs_model() and not isinstance(self.screen, TokenizeScreen):
            self.push_screen(TokenizeScreen(self.loaded.tokenizer, self.model_name, self.loaded.path))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(
                HelpScreen(
                    [
                        ("Generation (main screen)", MainScreen.BINDINGS),
                        ("Block lab (b)", BlockLabScreen.BINDINGS),
                        ("Compare (c)", CompareScreen.BINDINGS),
                        ("Tokenization (w)", TokenizeScreen.BINDINGS),
                        ("Anywhere", [*self.BINDINGS, Binding("ctrl+p", "command_palette", "Command palette")]),
                    ]
                )
            )

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        main = self.main_screen
        yield SystemCommand("Step one token", "Generate the next token (n)", main.action_step)
        yield SystemCommand("Run / pause", "Generate up to max new tokens; again to pause (g)", main.action_run_pause)
        yield SystemCommand("Undo", "Remove the last generated token (backspace)", main.action_undo)
        yield SystemCommand("Reset", "Back to the prompt, generator re-seeded (r)", main.action_reset)
        yield SystemCommand("Block lab", "The NumPy block stack and the parity check (b)", self.open_block_lab)
        yield SystemCommand("Compare", "Two models, or one at two temperatures, side by side (c)", self.open_compare)
        yield SystemCommand("Tokenization", "How a sentence splits into tokens, in many languages (w)", self.open_tokenize)
        yield SystemCommand("Keys", "Every key (?)", self.action_help)


def make_app(trace: Any = None, **options: Any) -> TfundApp:
    """The app, ready to run; `options` are TfundApp's. `model`: a name/path, or a LoadedModel (tests pass one to skip loading).

    `trace`: a TraceWriter or a path; `palette`: "color" or "shade" to override the terminal's;
    `deterministic`: hide timings so screenshots are reproducible.
    """
    if isinstance(trace, (str, os.PathLike)):
        from engine.views.trace import TraceWriter

        trace = TraceWriter(Path(trace))
    return TfundApp(trace=trace, **options)
