"""What the engine thread does with each command: one handler per kind of session (tui/controller.py).

- Loader: before the model is loaded; a Load replaces it with a GenerationHandler or a ReplayHandler.
- GenerationHandler: the live sampler of the main screen, with the session's trace.
- ReplayHandler: a recorded trace decides the tokens (tfund-tui --replay).
- CompareHandler: the compare screen's two samplers on one prompt.
Handlers run on the engine thread only and post plain-data messages; `refusal` is their one UI-thread
method and looks at nothing but the command.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from textual.message import Message

from engine.events import Candidate, SamplingConfig
from engine.runtime.loading import ModelLoadError
from engine.views.replay import ReplayError, ReplaySession, ReplayStep, read_trace
from engine.views.trace import session_record
from tui.commands import (
    Branch,
    Command,
    CompareSettings,
    Force,
    Load,
    LoadModelB,
    Parity,
    Preview,
    Recall,
    Reset,
    Run,
    SetAblations,
    SetPrompt,
    Step,
    Undo,
)
from tui.controller import BATCHES_PER_SECOND, RUN_BATCHES_PER_SECOND
from tui.messages import (
    CandidatesPreviewed,
    CompareModelLoaded,
    CompareProgress,
    ContextReady,
    EngineNote,
    LoadProgress,
    ModelKept,
    ModelReady,
    ParityComputed,
    ReplayReady,
    StepRecalled,
    TokenChosen,
    TokensGenerated,
    TokenUndone,
)

Post = Callable[[Message], None]
TOP_N = 10  # candidates kept per token (the pane shows the first nine: digits 1–9)
PARITY_GREEDY_TOKENS = 20  # greedy tokens compared NumPy vs torch in the block lab
CHOSEN_WAIT_S = 0.02  # the longest a step waits for its token's frame before it reads the token in
REPLAY_STEPS_PER_SECOND = 10  # g plays a recording at a pace a learner can follow
REPLAY_REFUSAL = "This is a replay of a recording: n/⌫ step through it, g plays, r rewinds."
NOT_LOADED = "The model is not loaded yet."
LOAD_FAILED = "No model: loading it failed ({}). Quit (q) and start tfund-tui again with other settings."


class TraceLog:
    """The session's trace: every line kept in memory (for `e`) and, with --trace, appended to the file."""

    def __init__(self, writer: Any = None) -> None:
        self.writer = writer  # engine.views.trace.TraceWriter or None
        self.records: list[dict | str] = []
        self.lock = threading.Lock()  # the engine thread writes; the UI thread copies and closes

    def write(self, record: dict | str) -> None:
        with self.lock:
            self.records.append(record)
            if self.writer is not None:
                self.writer.write_record(record)

    def lines(self) -> list[dict | str]:
        with self.lock:
            return list(self.records)

    def replace_with(self, lines: list[str]) -> None:
        """A replay saves the recording itself as the session's trace."""
        with self.lock:
            self.records = list(lines)

    def close(self) -> None:
        with self.lock:
            if self.writer is not None:
                self.writer.close()
                self.writer = None


def apply_settings(sampler: Any, settings: SamplingConfig) -> None:
    if settings != sampler.config:
        sampler.set_config(**asdict(settings))


def parity_of(model: Any, token_ids: tuple[int, ...]) -> ParityComputed:
    """The NumPy engine against torch on the loaded model (torch is loaded now if the session ran
    without it: the block lab says it is checking meanwhile); failures are shown in the Parity pane."""
    try:
        if model.device != "cpu":
            raise ValueError(f"the parity check runs on the CPU; this model is on {model.device}")
        from engine.views.parity import parity_report

        report = parity_report(
            model.hf_model, model.tokenizer, list(token_ids), n_greedy=PARITY_GREEDY_TOKENS, numpy_model=model.numpy_model()
        )
        return ParityComputed(report, None)
    except Exception as error:
        return ParityComputed(None, f"parity check failed: {error}")


def trace_doubts(recording: Any, loaded: Any) -> list[str]:
    """What the user should know about a trace that replays but is not quite what was recorded."""
    doubts = []
    if recording.truncated:
        doubts.append("The trace's last line was cut off mid-write; it is skipped.")
    others = sorted({s.model for s in recording.sessions if s.model is not None and loaded is not None and s.model != loaded.name})
    if others:
        doubts.append(f"The trace was recorded with {', '.join(repr(m) for m in others)}; it is recomputed with '{loaded.name}'.")
    return doubts


class Loader:
    """Before the model is loaded: only Load runs; a Preview waits in the queue for the model."""

    batches_per_second = BATCHES_PER_SECOND  # it runs no Run

    def __init__(self, trace: TraceLog, replaying: bool) -> None:
        self.trace = trace
        self.replaying = replaying  # a replay takes only what ReplayHandler takes
        self.failure: str | None = None  # why loading failed: every later key says it, not "not loaded yet"

    def refusal(self, command: Command) -> str | None:
        if self.replaying and not isinstance(command, (Load, Step, Undo, Reset, Run)):
            return REPLAY_REFUSAL
        if isinstance(command, (Load, Preview)):
            return None
        return NOT_LOADED if self.failure is None else LOAD_FAILED.format(self.failure)

    def handle(self, command: Command, post: Post) -> Any:
        if not isinstance(command, Load):
            return None
        try:
            return self.start(command, post)
        except Exception as error:  # the controller shows the error; the refusals keep saying why
            self.failure = str(error) if isinstance(error, ModelLoadError) else "see the error it gave"
            raise

    def start(self, command: Load, post: Post) -> Any:
        if command.replay is not None:
            return self.open_replay(command, post)
        model = self.load(command, post) if isinstance(command.source, str) else command.source
        return generation_on(model, command, self.trace, post)

    @staticmethod
    def load(command: Load, post: Post) -> Any:
        """Load the model named in the command: torch and transformers are imported only if its engine needs them."""
        from engine.runtime.loading import load_model, quiet_transformers

        quiet_transformers()  # a progress bar on stderr would draw over the UI
        post(LoadProgress(1, 4, f"finding {command.source}"))
        return load_model(
            command.source,
            device=command.device,
            allow_pickle=command.allow_pickle,
            engine=command.engine,
            threads=command.threads,
            progress=lambda text: post(LoadProgress(2, 4, text)),
        )

    def open_replay(self, command: Load, post: Post) -> ReplayHandler:
        """Replay: with the model the recording is recomputed (attention too); without it, shown as recorded."""
        path = Path(command.replay)
        recording = read_trace(path)
        self.trace.replace_with([line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()])
        model, note = None, None
        if any(session.prompt is None for session in recording.sessions):
            note = "the trace has no prompt header, so attention cannot be recomputed"
            replay = ReplaySession.of(recording)
        else:
            try:
                model = self.load(command, post) if isinstance(command.source, str) else command.source
                replay = ReplaySession.of(recording, model=model, engine=command.engine)
            except (ModelLoadError, ReplayError) as error:
                model, note = None, str(error)
                replay = ReplaySession.of(recording)
        post(LoadProgress(4, 4, "replaying the recording"))
        post(ReplayReady(model, replay_context(replay), len(replay.steps), replay.recomputes, note))
        for doubt in trace_doubts(recording, model):
            post(EngineNote(doubt, "warning"))
        return ReplayHandler(replay, model)


def generation_on(model: Any, command: Load, trace: TraceLog, post: Post) -> GenerationHandler:
    """A loaded model's live sampler on the command's prompt and settings; ModelReady tells the screen."""
    from engine.runtime.sampler import Sampler

    post(LoadProgress(3, 4, "building the sampler"))
    sampler = Sampler(model, command.settings, engine=command.engine, top_n=TOP_N)
    post(LoadProgress(4, 4, "reading the prompt"))
    sampler.set_prompt(command.prompt)
    handler = GenerationHandler(model, sampler, trace)
    handler.trace_session()
    post(ModelReady(model, sampler.info, ContextReady.of_sampler(sampler)))
    if sampler.note:
        post(EngineNote(f"{sampler.note[0].upper()}{sampler.note[1:]}.", "warning"))
    return handler


class GenerationHandler:
    """The main screen's live sampler; every token also goes to the trace. A Load (the model picker) swaps
    in another model: the new one is loaded while this one stays, and this one is let go once it is ready."""

    batches_per_second = RUN_BATCHES_PER_SECOND

    def __init__(self, model: Any, sampler: Any, trace: TraceLog) -> None:
        self.model = model
        self.sampler = sampler
        self.trace = trace

    def refusal(self, command: Command) -> str | None:
        return None

    def trace_session(self) -> None:
        self.trace.write(session_record(self.model.name, self.sampler.prompt, self.sampler.info))

    def handle(self, command: Command, post: Post) -> GenerationHandler | None:
        sampler = self.sampler
        if hasattr(command, "settings"):
            apply_settings(sampler, command.settings)
        match command:
            case Load():
                return self.switch(command, post)
            case Step():
                if not self.at_end(post):
                    self.emit(sampler.step(announce(post, forced=False)), post)
            case Force(rank=rank):
                candidates = sampler.preview()
                if rank > len(candidates):
                    post(EngineNote(f"There is no candidate {rank}."))
                elif not self.at_end(post):
                    self.emit(sampler.force(candidates[rank - 1].token_id, announce(post, forced=True)), post)
            case Undo():
                self.undo(post)
            case Reset():
                sampler.reset()
                self.trace_session()
                post(ContextReady.of_sampler(sampler))
            case SetPrompt(text=text):
                sampler.set_prompt(text)
                self.trace_session()
                post(ContextReady.of_sampler(sampler))
            case Preview():
                self.preview(post)
            case SetAblations(ablations=ablations, mode=mode):
                sampler.set_ablations(ablations, mode)
                self.trace.write({"ablations": [a.label for a in sampler.ablations], "mode": mode})
                self.preview(post)
            case Parity(token_ids=token_ids):
                post(parity_of(self.model, token_ids))
            case Recall():
                recall(sampler, command, post)
            case Branch(index=index, token_id=token_id):
                self.branch(index, token_id, post)

    def switch(self, command: Load, post: Post) -> GenerationHandler | None:
        """Load `command.source` and hand over to it; on failure say why in one sentence and keep this model."""
        try:
            model = Loader.load(command, post)
        except Exception as error:  # any failure: the model in use stays, and the learner is told why
            post(ModelKept(self.model.info, switch_failure(command.source, error)))
            return None
        self.model = self.sampler = None  # let the old weights go before the new sampler allocates its caches
        return generation_on(model, command, self.trace, post)

    def preview(self, post: Post) -> None:
        candidates = self.sampler.preview()
        post(CandidatesPreviewed(candidates, replace(self.sampler.config), self.sampler.ablation_view(candidates)))

    def at_end(self, post: Post) -> bool:
        if self.sampler.done:
            post(EngineNote("The model ended the text (end-of-text); undo or reset to go on."))
        return self.sampler.done

    def emit(self, event: Any, post: Post) -> None:
        self.trace.write(event.to_json())
        post(self.batch([event]))

    def undo(self, post: Post) -> None:
        sampler = self.sampler
        position = sampler.last_position
        if sampler.undo() is None:
            post(EngineNote("Nothing to undo: no generated tokens."))
            return
        self.trace.write({"undo": position})
        candidates = sampler.preview()
        post(
            TokenUndone(
                sampler.last_lens,
                sampler.last_norms,
                sampler.last_cosines,
                candidates,
                replace(sampler.config),
                sampler.ablation_view(candidates),
            )
        )

    def branch(self, index: int, token_id: int, post: Post) -> None:
        """Undo back to before token `index` (each undo posted and traced, as backspace does), then force `token_id`."""
        sampler = self.sampler
        if not max(sampler.prompt_len, 1) <= index < len(sampler.tokens):  # the prompt's tokens come first in the window
            post(EngineNote("Only a generated token still in the context can be replaced."))
            return
        while len(sampler.tokens) > index:
            self.undo(post)
        self.emit(sampler.force(token_id, announce(post, forced=True)), post)

    def run(self, command: Run, stop: threading.Event, newer_settings: Callable[[], Any], post: Post) -> Iterator[Any]:
        sampler = self.sampler
        apply_settings(sampler, command.settings)
        if self.at_end(post):
            return
        for event in sampler.run(command.max_tokens, cancel=stop):
            self.trace.write(event.to_json())
            settings = newer_settings()
            if settings is not None:  # a key pressed while this token was computed applies to the next one
                apply_settings(sampler, settings)
            yield event
        if sampler.done:
            post(EngineNote("The model ended the text (end-of-text)."))

    def batch(self, events: list) -> TokensGenerated:
        """Tokens for the screen, with the next token's candidates under the settings now in force."""
        sampler = self.sampler
        fresh_rows = [view.rows for view in sampler.views] if any(event.slid for event in events) else None
        candidates = sampler.preview()
        return TokensGenerated(events, candidates, replace(sampler.config), fresh_rows, sampler.ablation_view(candidates))


def switch_failure(source: str, error: BaseException) -> str:
    """One sentence: why `source` could not be opened (a ModelLoadError says it itself; others by their first line)."""
    from engine.runtime.loading import first_line

    why = str(error).rstrip(".") if isinstance(error, ModelLoadError) else f"{type(error).__name__}: {first_line(error)}"
    return f"Could not open {source}: {why}."


def announce(post: Post, forced: bool) -> Callable[[int, str, float], None]:
    """The sampler's on_chosen for a key's step: the screen shows the token before the model reads it in.

    The engine thread waits (at most CHOSEN_WAIT_S) until that frame is written: the UI thread shares the
    interpreter, and during the forward pass it got it back only after the pass (~3 ms on the toy)."""

    def chosen(token_id: int, text: str, p_raw: float) -> None:
        message = TokenChosen(token_id, text, p_raw, forced)
        post(message)
        message.shown.wait(CHOSEN_WAIT_S)

    return chosen


def recall(sampler: Any, command: Recall, post: Post) -> None:
    """A prompt token's step, if the context still holds that token there."""
    tokens = sampler.tokens
    if 1 <= command.index < len(tokens) and tokens[command.index] == command.token_id:
        post(StepRecalled(command.index, command.token_id, sampler.prediction_before(command.index)))


def replay_context(replay: ReplaySession) -> ContextReady:
    """Every pane's data at the replay's position (the session shown: its prompt and its steps so far)."""
    applied, upcoming = replay.applied, replay.upcoming
    if replay.recomputes:
        sampler = replay.sampler
        if upcoming is not None:
            sampler.set_config(**upcoming.settings.as_dict())  # the next token's candidates under its own settings
        context = ContextReady.of_sampler(sampler, recorded=applied)
    else:
        context = recorded_context(replay.prompt, applied, upcoming)
    context.replay_at = (replay.position, replay.session + 1, len(replay.sessions))
    return context


def recorded_context(prompt: str | None, applied: list[ReplayStep], upcoming: ReplayStep | None) -> ContextReady:
    """Without a model: the prompt as one untokenized block, the recorded pieces, no attention."""
    pieces = ([prompt] if prompt else []) + [step.text for step in applied]
    no_attention = [np.zeros((0, 0, i + 1), np.float32) for i in range(len(pieces))]  # T x [0, 0, i + 1]
    last = applied[-1] if applied else None
    settings = upcoming.settings if upcoming else last.settings if last else SamplingConfig()
    return ContextReady(
        token_ids=([-1] if prompt else []) + [step.token_id for step in applied],
        pieces=pieces,
        rows=no_attention,
        prompt_len=1 if prompt else 0,
        lens=last.lens if last else [],
        norms=last.norms if last else np.zeros(0, np.float32),
        cosines=np.zeros(0, np.float32),
        candidates=upcoming.candidates if upcoming else [],
        config=replace(settings),
        recorded=applied,
    )


class ReplayHandler:
    """Moves through a recording; the panes get the whole context at each new position."""

    batches_per_second = BATCHES_PER_SECOND  # above REPLAY_STEPS_PER_SECOND: every step is shown

    def __init__(self, replay: ReplaySession, model: Any) -> None:
        self.replay = replay
        self.model = model  # None when the recording is shown as recorded

    def refusal(self, command: Command) -> str | None:
        return None if isinstance(command, (Step, Undo, Reset, Run, Parity, Recall)) else REPLAY_REFUSAL

    def handle(self, command: Command, post: Post) -> None:
        replay = self.replay
        match command:
            case Step() if replay.forward() is None:
                post(EngineNote("The end of the recording; backspace steps back, r rewinds."))
            case Undo() if replay.back() is None:
                post(EngineNote("The start of the recording."))
            case Reset():
                replay.seek(0)
            case Recall():  # shown as recorded, the prompt is one block: the first token, which nothing predicts
                if replay.recomputes:
                    recall(replay.sampler, command, post)
                return
            case Parity(token_ids=token_ids):
                post(
                    parity_of(self.model, token_ids)
                    if self.model
                    else ParityComputed(None, "no model is loaded: this replay shows what was recorded")
                )
                return
        post(replay_context(replay))

    def run(self, command: Run, stop: threading.Event, newer_settings: Callable[[], Any], post: Post) -> Iterator[ContextReady]:
        while not stop.wait(1 / REPLAY_STEPS_PER_SECOND) and self.replay.forward() is not None:
            yield replay_context(self.replay)

    def batch(self, contexts: list[ContextReady]) -> ContextReady:
        return contexts[-1]


# ---- compare ---------------------------------------------------------------------------------------


@dataclass
class Side:
    """What one compare column shows, copied from its sampler on the engine thread (plain data)."""

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


def side_of(sampler: Any) -> Side:
    return Side(
        model_name=sampler.model.name,
        config=replace(sampler.config),
        token_ids=list(sampler.tokens),
        pieces=list(sampler.pieces),
        rows=[view.rows for view in sampler.views],
        prompt=sampler.prompt,
        generated="".join(sampler.generated_text),
        candidates=sampler.preview(),
        n_layer=sampler.info.n_layer,
        n_head=sampler.info.n_head,
    )


class CompareHandler:
    """Two samplers on one prompt (engine.views.compare.CompareSession); model A is the app's."""

    batches_per_second = BATCHES_PER_SECOND

    def __init__(self, model_a: Any) -> None:
        self.model_a = model_a
        self.model_b = model_a
        self.prompt = ""
        self.session: Any = None  # built by the first LoadModelB

    def refusal(self, command: Command) -> str | None:
        return None if isinstance(command, (LoadModelB, Step, Reset, Preview, Run)) else "Not on the compare screen."

    def handle(self, command: Command, post: Post) -> None:
        if isinstance(command, LoadModelB):
            self.load_b(command, post)
            return
        session = self.session
        if session is None:  # building the samplers failed, and the status says why
            return
        if hasattr(command, "settings"):
            self.apply(command.settings)
        match command:
            case Step() if session.done:
                post(EngineNote("The text ended (end-of-text); r resets."))
            case Step():
                post(self.progress([session.step()]))
            case Reset(settings=settings):
                if settings.follow != session.follow:
                    self.start(session.a, session.b, settings.follow, post)
                else:
                    session.set_prompt(self.prompt)
                    post(self.progress([], restart=True))
            case Preview():
                post(self.progress([]))

    def load_b(self, command: LoadModelB, post: Post) -> None:
        from engine.runtime.sampler import Sampler

        self.prompt = command.prompt
        name, quantize, note = command.name, command.quantize, ""
        try:
            if name is None or name == self.model_a.name:
                model = self.model_a  # the same weights: nothing to load
            else:
                from engine.runtime.loading import load_model

                # the CPU threads are the process's: B keeps A's (its own size would set them anew)
                model = load_model(name, device=self.model_a.device, allow_pickle=command.allow_pickle, threads=self.model_a.engine_threads)
            if quantize is not None:
                from engine.runtime.loading import quantized_model

                model, report = quantized_model(model, quantize)
                note = report.note
        except ModelLoadError as error:
            refusal = EngineNote(f"Model B unchanged: {str(error).rstrip('.')}.")
            if self.session is not None:
                post(refusal)
                return
            model, name, quantize = self.model_a, None, None  # nothing to keep yet: B starts as A
        else:
            refusal = None
        settings = command.settings
        self.start(Sampler(self.model_a, settings.a, top_n=TOP_N), Sampler(model, settings.b, top_n=TOP_N), settings.follow, post)
        self.model_b = model
        if refusal is not None:
            post(refusal)  # after the samplers' first progress, which would replace the status
        elif name is not None or quantize is not None:
            post(CompareModelLoaded(model, name or self.model_a.name, note))

    def start(self, a: Any, b: Any, follow: str | None, post: Post) -> None:
        from engine.views.compare import CompareSession

        session = CompareSession(a, b, follow=follow)
        session.set_prompt(self.prompt)
        self.session = session
        post(self.progress([], restart=True))

    def apply(self, settings: CompareSettings) -> None:
        apply_settings(self.session.a, settings.a)
        apply_settings(self.session.b, settings.b)

    def run(self, command: Run, stop: threading.Event, newer_settings: Callable[[], Any], post: Post) -> Iterator[Any]:
        session = self.session
        if session is None:
            return
        self.apply(command.settings)
        for step in session.run(command.max_tokens, stop):  # max new tokens more, as g on the main screen
            settings = newer_settings()
            if settings is not None:
                self.apply(settings)
            yield step
        if session.done:
            post(EngineNote("The text ended (end-of-text); r resets."))

    def batch(self, steps: list) -> CompareProgress:
        return self.progress(steps)

    def progress(self, steps: list, restart: bool = False) -> CompareProgress:
        session = self.session
        return CompareProgress(side_of(session.a), side_of(session.b), steps, restart, session.mode, session.follow)
