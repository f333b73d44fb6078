"""What the screens ask the engine thread to do: frozen dataclasses, each carrying all it needs.

The controller (tui/controller.py) runs them one at a time, in order, on its own thread; the thread
never reads App or widget attributes, so every setting a command depends on travels inside it.
`settings` is a SamplingConfig for generation and replay, a CompareSettings for the compare screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from engine.events import SamplingConfig


@dataclass(frozen=True)
class Command:
    refused_while_running: ClassVar[bool] = True  # a run in progress says "pause first" instead of queuing it


@dataclass(frozen=True)
class Load(Command):
    """Load the model and read the prompt (or open a recording to replay)."""

    source: Any  # a name or path for load_model, or the engine.runtime.loading.LoadedModel itself
    prompt: str
    settings: SamplingConfig
    device: str = "auto"
    engine: str = "auto"
    threads: int | None = None
    allow_pickle: bool = False
    replay: Any = None  # a trace path to replay instead of generating


@dataclass(frozen=True)
class Step(Command):
    """Sample one token under `settings`."""

    settings: Any


@dataclass(frozen=True)
class Force(Command):
    """Append the rank-th candidate (1-based) of the next token under `settings`."""

    rank: int
    settings: Any


@dataclass(frozen=True)
class Undo(Command):
    settings: Any  # the candidates shown after the undo are computed under these


@dataclass(frozen=True)
class Reset(Command):
    """Back to the prompt, the generator re-seeded."""

    settings: Any


@dataclass(frozen=True)
class SetPrompt(Command):
    text: str
    settings: Any


@dataclass(frozen=True)
class Preview(Command):
    """The next token's candidates under new settings; during a run, the run's next token takes them."""

    refused_while_running: ClassVar[bool] = False
    settings: Any


@dataclass(frozen=True)
class Run(Command):
    """Generate up to `max_tokens` tokens, posting them in batches; Pause ends it before its next token."""

    settings: Any
    max_tokens: int


@dataclass(frozen=True)
class Pause(Command):
    """Stop the run in progress (never queued: it acts at once)."""

    refused_while_running: ClassVar[bool] = False


@dataclass(frozen=True)
class Parity(Command):
    """NumPy engine vs torch on the loaded model, for these prompt token ids."""

    refused_while_running: ClassVar[bool] = False
    token_ids: tuple[int, ...]


@dataclass(frozen=True)
class Branch(Command):
    """Go back to before context token `index` (undoing every token from it on) and take `token_id` there instead."""

    index: int
    token_id: int
    settings: Any


@dataclass(frozen=True)
class Recall(Command):
    """The model's prediction of context token `index` from the tokens before it (a prompt token's step)."""

    index: int
    token_id: int  # the token there when asked: a context that changed since answers nothing


@dataclass(frozen=True)
class SetAblations(Command):
    """Knock out these components (engine.model.interventions.Ablation) for every next token; () clears."""

    ablations: tuple
    mode: str  # "zero" or "mean" (over the current context)
    settings: Any


@dataclass(frozen=True)
class CompareSettings:
    """The compare screen's settings: one SamplingConfig per side, and who decides the shared text."""

    a: SamplingConfig
    b: SamplingConfig
    follow: str | None = "a"  # "a": B takes A's token (shared context); None: independent texts


@dataclass(frozen=True)
class LoadModelB(Command):
    """Compare: (re)build both samplers, B on another model (None: the same model as A), quantized or not."""

    name: str | None
    allow_pickle: bool
    prompt: str
    settings: CompareSettings
    quantize: str | None = None  # round B's matrices through this llama.cpp type (engine.model.quantization)
