"""Messages that worker threads post to the app: plain data only, never torch objects or widgets."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from textual.message import Message

from engine.events import Candidate, LensEntry, ModelInfo, SamplingConfig, TokenEvent


class LoadProgress(Message):
    """A loading step began; a newer one replaces one still queued (like toolong's progress)."""

    def __init__(self, step: int, total: int, text: str) -> None:
        super().__init__()
        self.step = step
        self.total = total
        self.text = text

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LoadProgress)


class ContextReady(Message):
    """The whole context after loading, a new prompt or a reset: what every pane needs to redraw."""

    def __init__(
        self,
        token_ids: list[int],
        pieces: list[str],
        rows: list[np.ndarray],  # T x [L, H, i + 1] attention row of each context token
        prompt_len: int,
        lens: list[LensEntry],
        norms: np.ndarray,  # [L + 1]
        cosines: np.ndarray,  # [L]
        candidates: list[Candidate],
        config: SamplingConfig,
        recorded: list | None = None,  # replay mode: the recorded steps applied so far (engine.views.replay.ReplayStep)
    ) -> None:
        super().__init__()
        self.token_ids = token_ids
        self.pieces = pieces
        self.rows = rows
        self.prompt_len = prompt_len
        self.lens = lens
        self.norms = norms
        self.cosines = cosines
        self.candidates = candidates
        self.config = config
        self.recorded = recorded

    @classmethod
    def of_sampler(cls, sampler: Any, recorded: list | None = None) -> ContextReady:
        """The sampler's whole context and next-token candidates (call it in the engine thread)."""
        return cls(
            token_ids=list(sampler.tokens),
            pieces=list(sampler.pieces),
            rows=[view.attention for view in sampler.views],
            prompt_len=sampler.prompt_len,
            lens=sampler.last_lens,
            norms=sampler.last_norms,
            cosines=sampler.last_cosines,
            candidates=sampler.preview(),
            config=replace(sampler.config),
            recorded=recorded,
        )


class ModelReady(Message):
    """The model is loaded and the prompt read; the sampler is handed over (only workers call it)."""

    def __init__(self, loaded: Any, sampler: Any, info: ModelInfo, context: ContextReady) -> None:
        super().__init__()
        self.loaded = loaded
        self.sampler = sampler
        self.info = info
        self.context = context


class ReplayReady(Message):
    """Replay mode is set up: the session (only workers call it), the model when it loaded, and why not."""

    def __init__(self, loaded: Any, replay: Any, context: ContextReady, note: str | None) -> None:
        super().__init__()
        self.loaded = loaded  # engine.runtime.loading.LoadedModel or None: the recording is shown as recorded
        self.replay = replay  # engine.views.replay.ReplaySession
        self.context = context
        self.note = note


class JobFailed(Message):
    """A thread that is not a worker (the model loader) stopped with an error."""

    def __init__(self, group: str, error: BaseException) -> None:
        super().__init__()
        self.group = group
        self.error = error


class ExportWritten(Message):
    """The `e` key's files were written (paths), or the sentence saying why not (error)."""

    def __init__(self, paths: list, error: str | None) -> None:
        super().__init__()
        self.paths = paths
        self.error = error


class TokensGenerated(Message):
    """Tokens appended since the last message (one per step; a run batches ~1/30 s worth).

    `candidates` is the next token's distribution under `config`, after the last of `events`.
    """

    def __init__(
        self, events: list[TokenEvent], candidates: list[Candidate], config: SamplingConfig, rows: list[np.ndarray] | None
    ) -> None:
        super().__init__()
        self.events = events
        self.candidates = candidates
        self.config = config
        self.rows = rows  # fresh attention rows of the whole context when the window slid, else None


class TokenUndone(Message):
    """The last token was removed; the views of the new last position come with it."""

    def __init__(
        self, lens: list[LensEntry], norms: np.ndarray, cosines: np.ndarray, candidates: list[Candidate], config: SamplingConfig
    ) -> None:
        super().__init__()
        self.lens = lens
        self.norms = norms
        self.cosines = cosines
        self.candidates = candidates
        self.config = config


class CandidatesPreviewed(Message):
    """The next token's distribution after a settings change."""

    def __init__(self, candidates: list[Candidate], config: SamplingConfig) -> None:
        super().__init__()
        self.candidates = candidates
        self.config = config


class EngineNote(Message):
    """Something the user should know that is not an error (end of text, nothing to undo)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class EngineIdle(Message):
    """An engine job's thread has finished (also after a cancel or an error): the next job may start."""

    def __init__(self, job: str) -> None:
        super().__init__()
        self.job = job


class BlockLabComputed(Message):
    """A block-lab run finished (engine.model.blocklab.BlockLabResult)."""

    def __init__(self, result: Any) -> None:
        super().__init__()
        self.result = result


class ParityComputed(Message):
    """NumPy-vs-torch parity for the loaded model: the report dict, or the sentence saying why not."""

    def __init__(self, report: dict | None, error: str | None) -> None:
        super().__init__()
        self.report = report
        self.error = error
