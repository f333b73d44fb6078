"""Plain-data types shared by the engine, the CLI and the TUI.

Nothing here imports torch: the TUI imports this module at start-up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import numpy as np

DEFAULT_PROMPT = "In a small village,"  # the text every command and the TUI continue unless told otherwise


def counted(n: int, noun: str) -> str:
    """A count with its noun in the number it takes: "1 token", "5 tokens" (a noun that adds s)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def dropped_prompt_note(n_prompt: int, n_dropped: int, room: int) -> str:
    """The sentence that says a prompt was cut to fit the window (`room` tokens kept for it)."""
    return f"the prompt is {n_prompt} tokens and the window holds {room} of them: the oldest {n_dropped} were dropped"


@dataclass
class SamplingConfig:
    """Settings applied to the next token; change them between steps."""

    temperature: float = 0.8  # 0 means greedy (argmax); the seed notebook uses 0.8
    top_k: int = 0  # keep the k most likely tokens; 0 turns top-k off
    top_p: float = 1.0  # nucleus: keep the smallest set reaching p; 1.0 turns it off
    seed: int = 0  # seeds the sampler's own generator, never a global one
    max_new_tokens: int = 64  # how many tokens a run (`g`, `tfund generate`) produces

    def validate(self) -> None:
        """Raise ValueError naming the setting and its allowed range."""
        if not (isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError(f"temperature must be a finite number >= 0 (got {self.temperature})")
        if not (isinstance(self.top_k, int) and self.top_k >= 0):
            raise ValueError(f"top-k must be an integer >= 0 (got {self.top_k})")
        if not (isinstance(self.top_p, (int, float)) and math.isfinite(self.top_p) and 0 < self.top_p <= 1):
            raise ValueError(f"top-p must be in (0, 1] (got {self.top_p})")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise ValueError(f"seed must be an integer >= 0 (got {self.seed})")
        if not (isinstance(self.max_new_tokens, int) and self.max_new_tokens >= 0):
            raise ValueError(f"max-new-tokens must be an integer >= 0 (got {self.max_new_tokens})")

    def as_dict(self) -> dict:
        return asdict(self)


class Candidate(NamedTuple):
    """One possible next token: probability before (p_raw) and after (p) temperature/top-k/top-p."""

    token_id: int
    text: str
    p_raw: float
    p: float


@dataclass(frozen=True)
class AblationView:
    """The next token under the ablations in force, against the intact model (raw distributions, T = 1)."""

    labels: tuple[str, ...]  # e.g. ("L1.H3", "L0.mlp")
    mode: str  # "zero" or "mean"
    kl: float  # KL(intact ‖ ablated) in nats
    flipped: bool  # the most likely token changed
    intact: dict[int, float]  # token id -> the intact model's probability, for the candidates shown
    # the ablated model at the last position, as the Layers pane shows it (the intact one's are the TokenEvent's)
    lens: Sequence[LensEntry] = field(default=(), compare=False)  # the logit lens after each block
    norms: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), compare=False)  # [L + 1]
    cosines: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), compare=False)  # [L]


class LensEntry(NamedTuple):
    """Logit lens at one layer: final LN + unembedding applied to that layer's residual stream."""

    layer: int
    token_id: int
    text: str
    p: float


@dataclass(frozen=True)
class StepView:
    """One generation step as it happened: what the model saw and chose between before a token.

    For context token i this is the forward pass at position i - 1: the distribution token i was drawn
    from (`candidates`, under `config`; None for a prompt token, which was read, not sampled), and the
    logit lens, residual norms and cosines at position i - 1 (the layers' guesses of token i).
    """

    candidates: list[Candidate]
    config: SamplingConfig | None
    lens: list[LensEntry]
    norms: np.ndarray  # [L + 1]
    cosines: np.ndarray  # [L]
    ablated: tuple[str, ...] = ()  # the components knocked out when the token was drawn


@dataclass
class TokenEvent:
    """Everything a learner can see about one generated token. Plain data only.

    Conventions (T = context length after this token was appended):
    - `candidates` is the distribution this token was drawn from (sorted by p_raw, top N).
    - `attention[l, h, :]` is the new token's attention row over the context, itself included:
      shape [n_layer, n_head, T].
    - `lens` and `norms` are measured at the new token's position, i.e. they describe the model's
      guess for the *next* position layer by layer. `norms` has n_layer + 1 entries: the embedding,
      then the residual stream after each block.
    """

    token_id: int
    text: str  # the streamed text piece (may be "" while a multi-byte character is incomplete)
    position: int  # index of this token in the full sequence (prompt included; tokens slid out of the window still count)
    candidates: list[Candidate]
    attention: np.ndarray  # [n_layer, n_head, T] float32
    lens: list[LensEntry]  # one per layer, at this token's position: the guesses for the NEXT token (see above)
    norms: np.ndarray  # [n_layer + 1] float32, at this token's position, after it was read in
    cosines: np.ndarray  # [n_layer] cosine(residual after block i, residual before it)
    timings: dict[str, float]  # milliseconds: "forward", "sample", "total"
    config: SamplingConfig  # the settings in force when this token was chosen
    forced: bool = False  # chosen by hand with force()
    eos: bool = False  # the model produced its end-of-sequence token
    slid: bool = False  # the context reached n_positions; the oldest tokens were dropped
    dropped: int = 0  # how many tokens the window slid by (0 unless slid)
    p_raw: float = 0.0  # the model's probability for this token (temperature 1), even outside the top N
    p: float = 0.0  # its probability after temperature, top-k and top-p (0 for a forced token outside them)
    entropy: float = 0.0  # nats, of the distribution the token was drawn from (after temperature/top-k/top-p; 0 when greedy)
    entropy_raw: float = 0.0  # nats, of the model's own distribution (temperature 1)
    ablated: tuple[str, ...] = ()  # the components knocked out when this token was drawn ("L1.H3", "L0.mlp")

    def to_json(self, top: int = 5) -> dict:
        """The trace line for this event (JSON-serialisable)."""
        return {
            "position": self.position,
            "id": self.token_id,
            "text": self.text,
            "p_raw": round(self.p_raw, 6),
            "p": round(self.p, 6),
            "entropy": round(self.entropy, 6),
            "entropy_raw": round(self.entropy_raw, 6),
            "forced": self.forced,
            "eos": self.eos,
            "slid": self.slid,
            "settings": self.config.as_dict(),
            **({"ablated": list(self.ablated)} if self.ablated else {}),
            "candidates": [
                {"id": c.token_id, "text": c.text, "p_raw": round(c.p_raw, 6), "p": round(c.p, 6)} for c in self.candidates[:top]
            ],
            "lens": [{"layer": e.layer, "id": e.token_id, "text": e.text, "p": round(e.p, 6)} for e in self.lens],
            "norms": [round(float(n), 4) for n in self.norms],
            "timings_ms": {k: round(v, 3) for k, v in self.timings.items()},
        }


@dataclass
class ModelInfo:
    """What the UI shows about a loaded model."""

    name: str
    device: str
    n_layer: int
    n_head: int
    d_model: int
    n_positions: int
    vocab_size: int
    n_params: int = 0
    engine: str = ""  # "numpy" or "torch": what computes the tokens
    extra: dict = field(default_factory=dict)
    source: str | None = None  # a GGUF's origin: "smollm2", "ollama" or "gguf" (a path); None for a transformers directory
    file_type: str | None = None  # a GGUF's quantization ("Q4_1", "Q8_0", "F32"); None for a transformers directory
    n_kv_heads: int | None = None  # key/value heads when fewer than n_head (grouped-query attention); None: one per head

    def provenance(self) -> dict:
        """{"source": "smollm2", "file_type": "Q4_1"} for a model read from a GGUF; {} otherwise."""
        return {"source": self.source, "file_type": self.file_type} if self.source else {}
