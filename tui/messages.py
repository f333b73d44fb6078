"""What the engine thread posts back: dataclass messages of plain data, never torch objects or widgets."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from textual.message import Message

from engine.events import AblationView, Candidate, LensEntry, ModelInfo, SamplingConfig, StepView, TokenEvent


@dataclass
class LoadProgress(Message):
    """A loading step began; a newer one replaces one still queued (like toolong's progress)."""

    step: int
    total: int
    text: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LoadProgress)


@dataclass
class ContextReady(Message):
    """The whole context after loading, a new prompt, a reset or a replay move: all a pane needs."""

    token_ids: list[int]
    pieces: list[str]
    rows: list[np.ndarray]  # T x [L, H, i + 1] attention row of each context token
    prompt_len: int
    lens: list[LensEntry]
    norms: np.ndarray  # [L + 1]
    cosines: np.ndarray  # [L]
    candidates: list[Candidate]
    config: SamplingConfig
    recorded: list | None = None  # replay: the recorded steps applied so far (engine.views.replay.ReplayStep)
    ablation: AblationView | None = None  # the candidates are the ablated model's: how they moved
    replay_at: tuple[int, int, int] | None = None  # replay: (steps applied in all, session shown from 1, sessions)
    prompt_dropped: int = 0  # the oldest prompt tokens cut to fit the window (said on screen)

    @classmethod
    def of_sampler(cls, sampler: Any, recorded: list | None = None) -> ContextReady:
        """The sampler's whole context and next-token candidates (call it in the engine thread)."""
        candidates = sampler.preview()
        return cls(
            token_ids=list(sampler.tokens),
            pieces=list(sampler.pieces),
            rows=[view.rows for view in sampler.views],  # the compact float16 rows, shared
            prompt_len=sampler.prompt_len,
            lens=sampler.last_lens,
            norms=sampler.last_norms,
            cosines=sampler.last_cosines,
            candidates=candidates,
            config=replace(sampler.config),
            recorded=recorded,
            ablation=sampler.ablation_view(candidates),
            prompt_dropped=sampler.prompt_dropped if sampler.n_generated == 0 else 0,
        )


@dataclass
class ModelReady(Message):
    """The model is loaded and the prompt read (the sampler itself stays on the engine thread)."""

    model: Any  # engine.runtime.loading.LoadedModel: compare and tokenization start from it
    info: ModelInfo
    context: ContextReady


@dataclass
class ModelKept(Message):
    """The model picker's choice could not be opened: the model in use stays (`info`), and `why` says why."""

    info: ModelInfo
    why: str  # one sentence


@dataclass
class ReplayReady(Message):
    """A recording is open: its first position, how many steps it has, and why attention is not recomputed."""

    model: Any  # LoadedModel, or None: the recording is shown as recorded
    context: ContextReady
    n_steps: int
    recomputes: bool
    note: str | None


@dataclass
class TokenChosen(Message):
    """A step's token, drawn and not yet read in by the model (its TokensGenerated follows): shown at once."""

    token_id: int
    text: str
    p_raw: float  # its probability at temperature 1 (the Generation pane's colour)
    forced: bool
    shown: threading.Event = field(default_factory=threading.Event)  # set once the token's frame is written


@dataclass
class TokensGenerated(Message):
    """Tokens appended since the last message (one per step; a run batches up to 1/RUN_BATCHES_PER_SECOND s of them).

    `candidates` is the next token's distribution under `config`, after the last of `events`.
    """

    events: list[TokenEvent]
    candidates: list[Candidate]
    config: SamplingConfig
    rows: list[np.ndarray] | None  # fresh attention rows of the whole context when the window slid, else None
    ablation: AblationView | None = None  # the candidates are the ablated model's: how they moved


@dataclass
class TokenUndone(Message):
    """The last token was removed; the lens, norms and cosines of the new last position come with it."""

    lens: list[LensEntry]
    norms: np.ndarray
    cosines: np.ndarray
    candidates: list[Candidate]
    config: SamplingConfig
    ablation: AblationView | None = None  # the candidates are the ablated model's: how they moved


@dataclass
class CandidatesPreviewed(Message):
    """The next token's distribution after a settings change."""

    candidates: list[Candidate]
    config: SamplingConfig
    ablation: AblationView | None = None  # the candidates are the ablated model's: how they moved


@dataclass
class StepRecalled(Message):
    """The answer to a Recall: the step of the context token `index` (still `token_id`)."""

    index: int
    token_id: int
    step: StepView


@dataclass
class EngineNote(Message):
    """Something the user should know that is not an error (end of text, nothing to undo, a refused key)."""

    text: str
    severity: str = "information"


@dataclass
class EngineIdle(Message):
    """The engine thread finished its commands (also after a pause or an error): nothing runs or waits."""


@dataclass
class EngineFailed(Message):
    """A command raised; `loading` when it was the model's load, so the screen says there is no model."""

    error: BaseException
    loading: bool


@dataclass
class ParityComputed(Message):
    """NumPy-vs-torch parity for the loaded model: the report dict, or the sentence saying why not."""

    report: dict | None
    error: str | None


@dataclass
class BlockLabComputed(Message):
    """A block-lab run finished (engine.model.blocklab.BlockLabResult)."""

    result: Any


@dataclass
class ExportWritten(Message):
    """The `e` key's files were written (paths), or the sentence saying why not (error)."""

    paths: list
    error: str | None


@dataclass
class CompareProgress(Message):
    """Compare: both sides after some steps (restart: the steps start over)."""

    a: Any  # tui.screens.compare.Side
    b: Any
    steps: list  # engine.views.compare.CompareStep
    restart: bool
    mode: str  # "vocab" or "text" (engine.views.compare)
    follow: str | None


@dataclass
class CompareModelLoaded(Message):
    """Compare: model B is now this LoadedModel (`source` as asked for, before any quantization)."""

    model: Any
    source: str
    note: str = ""  # "re-quantized from Q4_1" when B was a quantized file rounded again


@dataclass
class HeadStatsComputed(Message):
    """The all-heads screen's statistics (engine.model.head_stats.head_stats: name -> [L, H]) for one context."""

    key: tuple
    stats: dict


@dataclass
class AttributionComputed(Message):
    """The attribution screen's result for one context: the top candidates and each one's Attribution."""

    key: tuple
    result: Any
