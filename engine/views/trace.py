"""Append-only JSON-lines trace of a session: one line per token event, flushed as it happens."""

from __future__ import annotations

import json
from pathlib import Path

from engine.events import ModelInfo, TokenEvent


def session_record(model: str, prompt: str, info: ModelInfo) -> dict:
    """The line that begins a session: the model as the user named it, the prompt, and for a GGUF where it
    came from and its file type (engine.events.ModelInfo.provenance)."""
    return {"session": {"model": model, "prompt": prompt, **info.provenance()}}


class TraceError(Exception):
    """The trace file cannot be opened or written; str(error) is one sentence."""


class TraceWriter:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")
        except OSError as error:
            raise TraceError(f"cannot write the trace file '{path}': {error.strerror or error}") from None

    def write_record(self, record: dict) -> None:
        try:
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._file.flush()
        except OSError as error:
            raise TraceError(f"cannot write the trace file '{self.path}': {error.strerror or error}") from None

    def write(self, event: TokenEvent) -> None:
        self.write_record(event.to_json())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
