"""The UI's copy of the context: plain data that the panes draw from, owned by the UI thread.

Workers never touch it; the app applies their messages to it and redraws on a timer, so many tokens
arriving at once (a fast GPU in run mode) cost one redraw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.events import AblationView, Candidate, LensEntry, SamplingConfig, StepView, TokenEvent
from engine.runtime.sampler import ATTENTION_DTYPE


@dataclass
class Position:
    """One context token as the panes show it."""

    token_id: int
    piece: str  # streamed text piece ("" while a multi-byte character is incomplete)
    attention: np.ndarray  # [L, H, i + 1] this token's attention row in every layer and head (float16, as the sampler keeps it)
    generated: bool  # False for prompt tokens
    p_raw: float | None = None  # the model's probability for it when chosen; None: prompt (or an old trace without it)
    forced: bool = False  # picked by hand
    entropy: float | None = None  # nats, of the distribution it was drawn from (TokenEvent.entropy); None: prompt (or an old trace)
    step: StepView | None = None  # the step that chose it, kept as it happened; None until a prompt token's is recalled
    before_slide: bool = False  # its step was taken over a longer context than the window now holds (audit D2)


@dataclass
class Transcript:
    positions: list[Position] = field(default_factory=list)
    lens: list[LensEntry] = field(default_factory=list)  # logit lens at the last position, one per layer
    norms: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # [L + 1] at the last position
    cosines: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # [L]
    candidates: list[Candidate] = field(default_factory=list)  # the next token's distribution
    candidates_config: SamplingConfig | None = None  # the settings `candidates` were computed under
    ablation: AblationView | None = None  # set when the candidates are the ablated model's
    last_ms: float | None = None  # the last token's engine time (forward + sample)
    n_generated: int = 0  # tokens generated since the prompt, including those the window slid past

    @property
    def pieces(self) -> list[str]:
        return [p.piece for p in self.positions]

    @property
    def rows(self) -> list[np.ndarray]:
        return [p.attention for p in self.positions]

    def reset_to(self, context) -> None:
        """The whole context anew (tui.messages.ContextReady): after loading, a new prompt, a reset, a replay move."""
        self.positions = [
            Position(token_id, piece, row, generated=i >= context.prompt_len)
            for i, (token_id, piece, row) in enumerate(zip(context.token_ids, context.pieces, context.rows))
        ]
        self.lens, self.norms, self.cosines = context.lens, context.norms, context.cosines
        self.set_candidates(context.candidates, context.config, context.ablation)
        self.last_ms = None
        self.n_generated = 0
        if context.recorded is not None:
            self.mark_recorded(context.recorded)

    def mark_recorded(self, applied: list) -> None:
        """Replay: the generated positions get the recorded probability, forced flag and step (newest last).

        A step the model recomputed brings its own view. Otherwise a recorded step's lens and norms are
        measured after its token, so token k's step takes them from step k - 1.
        """
        generated = [position for position in self.positions if position.generated]
        before = [None, *applied[:-1]]  # the recorded step before each one
        for position, step, previous in zip(reversed(generated), reversed(applied), reversed(before)):
            chosen = next((c.p_raw for c in step.candidates if c.token_id == step.token_id), None)
            position.p_raw = step.p_raw if step.p_raw is not None else chosen
            position.forced = step.forced
            position.entropy = step.entropy  # the timeline's ent row: what the trace recorded
            if step.view is not None:  # recomputed by the model: kept as fully as a live step
                position.step = step.view
                continue
            lens, norms = (previous.lens, previous.norms) if previous is not None else ([], np.zeros(0, np.float32))
            position.step = StepView(step.candidates, step.settings, lens, norms, np.zeros(0, np.float32))
        self.n_generated = len(applied)

    def append(self, event: TokenEvent) -> None:
        """Add a generated token; when the window slid, the oldest positions go first."""
        if event.slid:
            del self.positions[: event.dropped]
        step = StepView(event.candidates, event.config, *self.layers(), event.ablated)  # the panes it was drawn under
        row = event.attention.astype(ATTENTION_DTYPE)  # [L, H, T] kept as compactly as the sampler's rows
        self.positions.append(Position(event.token_id, event.text, row, True, event.p_raw, event.forced, event.entropy, step))
        self.lens, self.norms, self.cosines = event.lens, event.norms, event.cosines
        self.last_ms = event.timings.get("total")
        self.n_generated += 1

    def layers(self) -> tuple[Sequence[LensEntry], np.ndarray, np.ndarray]:
        """(lens, norms, cosines) at the last position of the model the candidates are drawn from: under
        ablations the ablated model's, as the Candidates pane's are."""
        if self.ablation is not None:
            return self.ablation.lens, self.ablation.norms, self.ablation.cosines
        return self.lens, self.norms, self.cosines

    def remember_step(self, index: int, token_id: int, step: StepView) -> bool:
        """A recalled prompt token's step, kept if the token is still there; True when kept."""
        if index < len(self.positions) and self.positions[index].token_id == token_id:
            self.positions[index].step = step
            self.positions[index].before_slide = False  # recalled over the window as it is now
            return True
        return False

    def replace_rows(self, rows: list[np.ndarray]) -> None:
        """After a slide the model re-read the window: every position's attention row changed, while the
        steps kept so far (candidates, lens, norms) stay those of the longer context they were taken in."""
        for position, row in zip(self.positions, rows):
            position.attention = row
            position.before_slide = True

    def pop(self, lens: list[LensEntry], norms: np.ndarray, cosines: np.ndarray) -> None:
        self.positions.pop()
        self.lens, self.norms, self.cosines = lens, norms, cosines
        self.n_generated -= 1

    def set_candidates(self, candidates: list[Candidate], config: SamplingConfig, ablation: AblationView | None = None) -> None:
        self.candidates = candidates
        self.candidates_config = config
        self.ablation = ablation
