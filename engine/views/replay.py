"""Replay a recorded session (the JSON-lines trace of engine/views/trace.py) step by step.

    recorded = read_trace("session.jsonl")          # steps (+ prompt/model when the trace has a header)
    replay = ReplaySession(recorded.steps, model=load_model("toy"), prompt=recorded.prompt)
    frame = replay.forward()                        # ReplayFrame: the recorded step + recomputed attention
    replay.back()

Trace lines understood:
- a token event, as written by TokenEvent.to_json: {"position", "id", "text", "settings", "candidates", ...};
- {"undo": position}: the last token was undone; replay drops the last recorded step;
- {"session": {"prompt": ..., "model": ...}}: a session begins (launch, reset or a new prompt); the steps
  before it are dropped, and its prompt makes recomputation faithful.
In a trace without session lines, a token whose position is not past the previous one (and that did not
slide the window) means the session was reset: it replaces the recorded steps at its position and after.
A truncated last line (the writer was interrupted mid-line) is skipped; any other unreadable line is an error.

With a model, the recorded tokens are forced into a Sampler one by one (with the recorded settings in
force), so every pane can show what the model computes for them, attention included, even though the
model would not necessarily sample the same tokens again. Without a model, or without the prompt,
only what was recorded is shown (candidates, logit lens, norms, text).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.events import Candidate, LensEntry, SamplingConfig, TokenEvent

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
    forced: bool = False
    eos: bool = False
    slid: bool = False
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class RecordedSession:
    steps: list[ReplayStep]
    prompt: str | None  # from the header line, when the trace has one
    model: str | None  # likewise
    truncated: bool  # the last line was cut short and skipped


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


# ---- reading ---------------------------------------------------------------------------------
def read_trace(path: str | Path) -> RecordedSession:
    """Parse a trace file, applying undo lines. Raises ReplayError with one sentence."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        message = error.strerror if isinstance(error, OSError) and error.strerror else error.__class__.__name__
        raise ReplayError(f"cannot read the trace '{path}': {message}") from None
    lines = raw.split("\n")
    complete = raw.endswith("\n")  # a writer always ends a record with a newline
    steps: list[ReplayStep] = []
    header: dict = {}
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
            header = record["session"] if isinstance(record["session"], dict) else {}
            steps = []  # a session begins (start, reset or a new prompt): the steps before it are not replayed
        elif all(key in record for key in EVENT_KEYS):
            step = parse_step(record, path, number)
            while not header and steps and not step.slid and steps[-1].position >= step.position:
                steps.pop()  # a trace without session lines was reset: this token replaces those
            steps.append(step)
        else:
            raise ReplayError(f"'{path}' is not a tfund trace: line {number} is neither a token event nor an undo")
    return RecordedSession(steps, header.get("prompt"), header.get("model"), truncated)


def load_trace(path: str | Path) -> list[ReplayStep]:
    """The recorded steps of a trace file, undo lines applied (see read_trace)."""
    return read_trace(path).steps


def parse_step(record: dict, path: Path, number: int) -> ReplayStep:
    try:
        settings = SamplingConfig(**{k: v for k, v in record.get("settings", {}).items() if k in SamplingConfig.__dataclass_fields__})
        settings.validate()
        return ReplayStep(
            position=int(record["position"]),
            token_id=int(record["id"]),
            text=str(record["text"]),
            settings=settings,
            candidates=[Candidate(int(c["id"]), str(c["text"]), float(c["p_raw"]), float(c["p"])) for c in record.get("candidates", [])],
            lens=[LensEntry(int(e["layer"]), int(e["id"]), str(e["text"]), float(e["p"])) for e in record.get("lens", [])],
            norms=np.asarray(record.get("norms", []), dtype=np.float32),
            p_raw=float(record["p_raw"]) if "p_raw" in record else None,
            forced=bool(record.get("forced", False)),
            eos=bool(record.get("eos", False)),
            slid=bool(record.get("slid", False)),
            timings=dict(record.get("timings_ms", {})),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ReplayError(f"'{path}' line {number} is a malformed token event ({error.__class__.__name__}: {error})") from None


# ---- replaying -------------------------------------------------------------------------------
class ReplaySession:
    """Forward/back through recorded steps; with a model and the prompt, attention is recomputed."""

    def __init__(self, steps: list[ReplayStep], model: Any = None, prompt: str | None = None, engine: str = "auto"):
        self.steps = steps
        self.prompt = prompt
        self.position = 0  # steps applied
        self.sampler = None
        if model is not None and prompt is not None:
            from engine.runtime.sampler import Sampler

            out_of_vocab = [s.token_id for s in steps if not 0 <= s.token_id < model.info.vocab_size]
            if out_of_vocab:
                raise ReplayError(
                    f"the trace holds token id {out_of_vocab[0]}, outside the vocabulary of '{model.name}' "
                    f"({model.info.vocab_size} tokens); it was recorded with another model"
                )
            self.sampler = Sampler(model, steps[0].settings if steps else SamplingConfig(), engine=engine)
            self.sampler.set_prompt(prompt)
        self.events: list[TokenEvent] = []  # recomputed, one per applied step

    @property
    def recomputes(self) -> bool:
        """True when a model recomputes each step (a model and the prompt were given)."""
        return self.sampler is not None

    def forward(self) -> ReplayFrame | None:
        """Apply the next recorded step; None at the end."""
        if self.position >= len(self.steps):
            return None
        step = self.steps[self.position]
        if self.sampler is not None:
            self.recompute(step)
        self.position += 1
        return self.current()

    def back(self) -> ReplayFrame | None:
        """Undo the last applied step; None when already at the start."""
        if self.position == 0:
            return None
        self.position -= 1
        if self.sampler is not None:
            if self.events.pop().slid:
                self.rebuild()  # undo cannot bring back the tokens the window dropped
            else:
                self.sampler.undo()
        return self.current()

    def rebuild(self) -> None:
        """Recompute from the prompt up to the current position."""
        self.sampler.set_prompt(self.prompt)
        self.events = []
        for step in self.steps[: self.position]:
            self.recompute(step)

    def recompute(self, step: ReplayStep) -> None:
        """Force the recorded token, with the recorded settings in force (so candidates match)."""
        self.sampler.set_config(**step.settings.as_dict())
        self.events.append(self.sampler.force(step.token_id))

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
        pieces = [s.text for s in self.steps[: self.position]]
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
        )
