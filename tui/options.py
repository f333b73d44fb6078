"""What tfund-tui was started with: one typed value the app hands to its main screen."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.events import DEFAULT_PROMPT, SamplingConfig

DEFAULT_EXPORT_DIR = "tfund-exports"


@dataclass(frozen=True)
class SessionOptions:
    model_source: Any = "toy"  # a name/path for load_model, or the LoadedModel itself (tests pass one to skip loading)
    prompt: str = DEFAULT_PROMPT
    config: SamplingConfig = field(default_factory=SamplingConfig)  # the settings the first token uses
    device: str = "auto"
    engine: str = "auto"  # auto, numpy or torch (engine.runtime.loading.choose_engine)
    threads: int | None = None  # torch's CPU threads; None: engine.runtime.loading.thread_policy
    trace: Any = None  # engine.views.trace.TraceWriter or None
    allow_pickle: bool = False  # let load_model read pickle weights the user trusts
    replay: Path | None = None  # a trace to replay instead of generating
    export_dir: Path = Path(DEFAULT_EXPORT_DIR)
    deterministic: bool = False  # hide timings and exact parity digits (snapshot tests)

    @property
    def model_name(self) -> str:
        return self.model_source if isinstance(self.model_source, str) else self.model_source.name
