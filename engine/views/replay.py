"""Replay a recorded session (the JSON-lines trace of engine/views/trace.py) step by step.

    recorded = read_trace("session.jsonl")          # every session's steps (+ prompt/model from each header)
    replay = ReplaySession.of(recorded, model=load_model("toy"))  # all sessions in order
    frame = replay.forward()                        # ReplayFrame: the recorded step + recomputed attention
    replay.back()

Trace lines understood:
- a token event, as written by TokenEvent.to_json: {"position", "id", "text", "settings", "candidates", ...};
  its "candidates" are what the token was drawn from, while its "lens" and "norms" are measured at the
  token's own position after it was read in: the guesses for the NEXT token;
- {"undo": position}: the last token was undone; replay drops the last recorded step;
- {"session": {"prompt": ..., "model": ...}}: a session begins (launch, reset or a new prompt); its prompt
  makes recomputation faithful. A replay plays every session in order, each from its own prompt
  (RecordedSession.steps and .prompt are the last session's: what the live app showed at the end).
In a trace without session lines, a token whose position is not past the previous one (and that did not
slide the window) means the session was reset: it replaces the recorded steps at its position and after.
A truncated last line (the writer was interrupted mid-line) is skipped; any other unreadable line is an error.

With a model, the recorded tokens are forced into a Sampler one by one (with the recorded settings in
force), so every pane can show what the model computes for them, attention included, even though the
model would not necessarily sample the same tokens again. Without a model, or without the prompt,
only what was recorded is shown (candidates, logit lens, norms, text).
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from engine.events import Candidate, LensEntry, SamplingConfig, StepView, TokenEvent

EVENT_KEYS = ("position", "id", "text")  # what makes a line a token event


class ReplayError(Exception):
    """The trace cannot be read or replayed; str(error) is one sentence."""


@dataclass
class ReplayStep:
    """One recorded token event."""

    position: int  # index of the token in the full sequence (prompt included)
    token_id: int
    text: str  # the streamed text piece
    settings: SamplingConfig  # in force when the token was chosen
    candidates: list[Candidate]  # the recorded top candidates (top 5 in traces from to_json)
    lens: list[LensEntry]
    norms: np.ndarray  # [n_layer + 1]
    p_raw: float | None = None  # the model's probability for the token (None in traces older than the field)
    entropy: float | None = None  # nats, of the distribution it was drawn from (None in traces older than the field)
    forced: bool = False
    eos: bool = False
    slid: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    view: StepView | None = None  # recomputed by the model: the step as a live session keeps it (ReplaySession.applied)


@dataclass
class TraceSession:
    """The steps from one session line (launch, reset, new prompt) to the next."""

    prompt: str | None  # from its header line (None: a trace without one)
    model: str | None  # likewise
    steps: list[ReplayStep]


@dataclass
class RecordedSession:
    steps: list[ReplayStep]  # the last session's
    prompt: str | None  # from the last header line, when the trace has one
    model: str | None  # likewise
    truncated: bool  # the last line was cut short and skipped
    sessions: list[TraceSession] = field(default_factory=list)  # every session in order, the last included

    @property
    def n_steps(self) -> int:
        """Token steps in all sessions together."""
        return sum(len(session.steps) for session in self.sessions)


@dataclass
class ReplayFrame:
    """What the panes show at one replay position."""

    position: int  # steps applied: 0 = before the first recorded token
    step: ReplayStep | None  # the step just applied (None at position 0)
    text: str  # prompt (when known) + the recorded pieces so far
    candidates: list[Candidate]  # recorded candidates of this step
    event: TokenEvent | None  # recomputed by the model (None without a model)
    attention: np.ndarray | None  # [L, H, T, T] recomputed over the context (None without a model)
    tokens: list[str]  # context pieces (recomputed) or the recorded pieces so far
    matches_recording: bool  # the recomputed piece equals the recorded one (True without a model)
    session: int = 0  # the index of the session shown (in ReplaySession.sessions)


# ---- reading ---------------------------------------------------------------------------------
def read_trace(path: str | Path) -> RecordedSession:
    """Parse a trace file, applying undo lines. Raises ReplayError with one sentence."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ReplayError(f"cannot read the trace '{path}': it is not UTF-8 text (a trace is JSON lines)") from None
    except OSError as error:
        raise ReplayError(f"cannot read the trace '{path}': {error.strerror or 'it cannot be opened'}") from None
    lines = raw.split("\n")
    complete = raw.endswith("\n")  # a writer always ends a record with a newline
    steps: list[ReplayStep] = []
    header: dict = {}
    sessions: list[TraceSession] = []
    truncated = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        last = number == len(lines) and not complete
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except ValueError:
            if last and steps:
                truncated = True  # interrupted mid-write: keep what came before
                continue
            raise ReplayError(f"'{path}' is not a tfund trace: line {number} is not a JSON object") from None
        if "undo" in record:
            if steps:
                steps.pop()
        elif "session" in record:
            if steps or header:
                sessions.append(TraceSession(header.get("prompt"), header.get("model"), steps))
            header = record["session"] if isinstance(record["session"], dict) else {}
            steps = []  # a session begins (start, reset or a new prompt): its steps start afresh
        elif "ablations" in record:
            pass  # the main screen's knock-outs changed; each token event lists those it was drawn under
        elif all(key in record for key in EVENT_KEYS):
            step = parse_step(record, path, number)
            while not header and steps and not step.slid and steps[-1].position >= step.position:
                steps.pop()  # a trace without session lines was reset: this token replaces those
            steps.append(step)
        else:
            raise ReplayError(f"'{path}' is not a tfund trace: line {number} is neither a token event nor an undo")
    sessions.append(TraceSession(header.get("prompt"), header.get("model"), steps))
    return RecordedSession(steps, header.get("prompt"), header.get("model"), truncated, sessions)


def load_trace(path: str | Path) -> list[ReplayStep]:
    """The recorded steps of a trace file, undo lines applied (see read_trace)."""
    return read_trace(path).steps


def parse_step(record: dict, path: Path, number: int) -> ReplayStep:
    """One token event; ReplayError naming the line and what is wrong with it, in words (no Python types)."""
    malformed = f"'{path}' line {number} is a malformed token event"
    try:
        settings = SamplingConfig(**{k: v for k, v in record.get("settings", {}).items() if k in SamplingConfig.__dataclass_fields__})
        settings.validate()
    except (TypeError, ValueError, AttributeError) as error:
        reason = str(error) if isinstance(error, ValueError) else "its settings are not an object of named values"
        raise ReplayError(f"{malformed}: {reason}") from None
    try:
        if not (isinstance(record["position"], int) and record["position"] >= 0 and isinstance(record["id"], int) and record["id"] >= 0):
            raise ValueError("position and id")
        return ReplayStep(
            position=int(record["position"]),
            token_id=int(record["id"]),
            text=str(record["text"]),
            settings=settings,
            candidates=[Candidate(int(c["id"]), str(c["text"]), float(c["p_raw"]), float(c["p"])) for c in record.get("candidates", [])],
            lens=[LensEntry(int(e["layer"]), int(e["id"]), str(e["text"]), float(e["p"])) for e in record.get("lens", [])],
            norms=np.asarray(record.get("norms", []), dtype=np.float32),
            p_raw=float(record["p_raw"]) if "p_raw" in record else None,
            entropy=float(record["entropy"]) if "entropy" in record else None,
            forced=bool(record.get("forced", False)),
            eos=bool(record.get("eos", False)),
            slid=bool(record.get("slid", False)),
            timings=dict(record.get("timings_ms", {})),
        )
    except KeyError as error:
        raise ReplayError(f"{malformed}: it has no '{error.args[0]}'") from None
    except (TypeError, ValueError):
        raise ReplayError(
            f"{malformed}: position and id must be whole numbers >= 0, probabilities numbers, candidates and lens lists of objects"
        ) from None


# ---- replaying -------------------------------------------------------------------------------
class ReplaySession:
    """Forward/back through recorded steps; with a model and the prompts, attention is recomputed.

    `steps` and `prompt` replay one session; `sessions` (read_trace's, see ReplaySession.of) replays each
    in order, the model re-reading each session's own prompt where it begins. Positions count steps over
    all sessions; at a position, the session of the last applied step is shown (the first at position 0).
    """

    def __init__(
        self,
        steps: list[ReplayStep],
        model: Any = None,
        prompt: str | None = None,
        engine: str = "auto",
        sessions: list[TraceSession] | None = None,
    ):
        given = sessions if sessions is not None else [TraceSession(prompt, None, steps)]
        self.sessions = [session for session in given if session.steps] or given[-1:] or [TraceSession(prompt, None, [])]
        self.steps = [step for session in self.sessions for step in session.steps]
        self.starts = [0]  # index in self.steps of each session's first step
        for session in self.sessions[:-1]:
            self.starts.append(self.starts[-1] + len(session.steps))
        self.position = 0  # steps applied
        self.sampler = None
        if model is not None and all(session.prompt is not None for session in self.sessions):
            from engine.runtime.sampler import Sampler

            out_of_vocab = [s.token_id for s in self.steps if not 0 <= s.token_id < model.info.vocab_size]
            if out_of_vocab:
                raise ReplayError(
                    f"the trace holds token id {out_of_vocab[0]}, outside the vocabulary of '{model.name}' "
                    f"({model.info.vocab_size} tokens); it was recorded with another model"
                )
            self.sampler = Sampler(model, self.steps[0].settings if self.steps else SamplingConfig(), engine=engine)
            self.sampler.set_prompt(self.sessions[0].prompt)
        self.events: list[TokenEvent] = []  # recomputed, one per applied step
        self.views: list[StepView] = []  # recomputed, one per applied step: what chose its token (see recompute)

    @classmethod
    def of(cls, recording: RecordedSession, model: Any = None, engine: str = "torch") -> ReplaySession:
        """Every session of a read trace, in order."""
        return cls(
            [],
            model=model,
            engine=engine,
            sessions=recording.sessions or [TraceSession(recording.prompt, recording.model, recording.steps)],
        )

    @property
    def recomputes(self) -> bool:
        """True when a model recomputes each step (a model and every session's prompt were given)."""
        return self.sampler is not None

    def session_at(self, position: int) -> int:
        """The session shown at `position`: that of the last applied step (the first at position 0)."""
        return bisect.bisect_right(self.starts, max(position - 1, 0)) - 1

    @property
    def session(self) -> int:
        return self.session_at(self.position)

    @property
    def prompt(self) -> str | None:
        """The prompt of the session shown."""
        return self.sessions[self.session].prompt

    @property
    def applied(self) -> list[ReplayStep]:
        """The steps of the session shown, up to the position; recomputed, each carries its `view`."""
        start = self.starts[self.session]
        steps = self.steps[start : self.position]
        if self.sampler is None:
            return steps
        return [replace(step, view=view) for step, view in zip(steps, self.views[start : self.position])]

    @property
    def upcoming(self) -> ReplayStep | None:
        """The next step, when it continues the session shown (None at its end)."""
        if self.position >= len(self.steps) or (self.position > 0 and self.position in self.starts):
            return None
        return self.steps[self.position]

    def forward(self) -> ReplayFrame | None:
        """Apply the next recorded step; None at the end."""
        if self.position >= len(self.steps):
            return None
        step = self.steps[self.position]
        if self.sampler is not None:
            if self.position > 0 and self.position in self.starts:  # a new session: the model reads its prompt
                self.sampler.set_prompt(self.sessions[self.session_at(self.position + 1)].prompt)
            self.recompute(step)
        self.position += 1
        return self.current()

    def back(self) -> ReplayFrame | None:
        """Undo the last applied step; None when already at the start."""
        if self.position == 0:
            return None
        self.position -= 1
        if self.sampler is not None:
            first_of_session = self.position > 0 and self.position in self.starts
            self.views.pop()
            if self.events.pop().slid or first_of_session:
                self.rebuild()  # undo cannot bring back the tokens the window dropped, nor the session before
            else:
                self.sampler.undo()
        return self.current()

    def rebuild(self) -> None:
        """Recompute the session shown from its prompt up to the current position."""
        start = self.starts[self.session]
        self.sampler.set_prompt(self.prompt)
        del self.events[start:], self.views[start:]
        for step in self.steps[start : self.position]:
            self.recompute(step)

    def recompute(self, step: ReplayStep) -> None:
        """Force the recorded token, with the recorded settings in force (so candidates match), and keep
        its step as a live session does: all its candidates, and the lens, norms and cosines of the
        position that chose it (the trace has 5 candidates, no cosines, and for the first token no lens)."""
        sampler = self.sampler
        sampler.set_config(**step.settings.as_dict())
        chose_it = (sampler.last_lens, sampler.last_norms, sampler.last_cosines)  # before the token is read in
        event = sampler.force(step.token_id)
        self.events.append(event)
        self.views.append(StepView(event.candidates, replace(step.settings), *chose_it))

    def seek(self, position: int) -> ReplayFrame:
        """Go to `position` (clamped to [0, len(steps)]) by stepping forward or back."""
        position = max(0, min(position, len(self.steps)))
        while self.position < position:
            self.forward()
        while self.position > position:
            self.back()
        return self.current()

    def current(self) -> ReplayFrame:
        step = self.steps[self.position - 1] if self.position else None
        pieces = [s.text for s in self.applied]
        event = self.events[-1] if self.events else None
        return ReplayFrame(
            position=self.position,
            step=step,
            text=(self.prompt or "") + "".join(pieces),
            candidates=step.candidates if step else [],
            event=event,
            attention=self.sampler.attention_matrix() if self.sampler is not None else None,
            tokens=list(self.sampler.pieces) if self.sampler is not None else pieces,
            matches_recording=event is None or step is None or event.text == step.text,
            session=self.session,
        )
