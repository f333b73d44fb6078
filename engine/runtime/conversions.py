"""A GGUF file converted once, kept in tfund's cache as a transformers checkpoint directory.

Reading a GGUF means parsing its metadata (SmolLM2's 49,152 tokens and 48,900 merges) and dequantizing
every tensor: seconds. The conversion (config.json, tokenizer.json, tokenizer_config.json and float32
weights in model.safetensors) loads in a fraction of that, and any transformers tool can open it. It is
kept only up to CONVERSION_LIMIT_BYTES of weights: a bigger model's float32 copy would cost more disk
than the load it saves (SmolLM2-135M: 538 MB; a 1B model: 4 GB).

A conversion names the file it came from (absolute path, size, modification time of each part) and the
version of the conversion; a file changed since, or a newer tfund, converts again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.formats.gguf import (
    BYTES_PER_PARAM,
    GGUFError,
    GGUFMemoryError,
    available_memory,
    check_memory,
    find_gguf,
    memory_problem,
    open_gguf,
    split_parts,
)

CONVERSION_LIMIT_BYTES = 1 << 30  # 1 GiB of float32 weights: SmolLM2 (538 MB) is kept, a 1B model (4 GB) is not
CONVERSION_VERSION = 1  # raise when the conversion of the same file changes
SOURCE_FILE = "tfund-source.json"


@dataclass
class Converted:
    """What a GGUF file stands for, as a transformers checkpoint holds it."""

    config: dict  # config.json
    state: dict[str, np.ndarray]  # float32, Hugging Face names
    tokenizer_json: str
    tokenizer_config: dict
    file_type: str  # the GGUF's quantization ("Q4_1"): what the user loaded, kept for the status line


def cache_root() -> Path:
    """tfund's cache: $TFUND_CACHE, else the platform's user cache folder (as engine.store names it)."""
    if configured := os.environ.get("TFUND_CACHE"):
        return Path(configured).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "tfund"
    if sys.platform == "win32" and (local := os.environ.get("LOCALAPPDATA")):
        return Path(local) / "tfund" / "Cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tfund"


def source_of(shards: tuple[Path, ...]) -> dict:
    """What identifies the GGUF a conversion came from."""
    files = []
    for shard in shards:
        stat = shard.stat()
        files.append({"path": str(shard.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return {"version": CONVERSION_VERSION, "files": files}


def conversion_dir(shards: tuple[Path, ...], root: Path | None = None) -> Path:
    """Where the conversion of this GGUF lives: conversions/{file stem}-{hash of its path}."""
    first = shards[0].resolve()
    digest = hashlib.sha256(str(first).encode("utf-8")).hexdigest()[:16]
    return (root or cache_root()) / "conversions" / f"{first.stem}-{digest}"


def read_conversion(directory: Path, source: dict) -> Converted | None:
    """The conversion in `directory` if it was made from `source` by this version; None otherwise."""
    from safetensors.numpy import load_file

    try:
        meta = json.loads((directory / SOURCE_FILE).read_text(encoding="utf-8"))
        if meta.get("source") != source:
            return None
        return Converted(
            config=json.loads((directory / "config.json").read_text(encoding="utf-8")),
            state=load_file(str(directory / "model.safetensors")),
            tokenizer_json=(directory / "tokenizer.json").read_text(encoding="utf-8"),
            tokenizer_config=json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8")),
            file_type=meta["file_type"],
        )
    except Exception:  # absent, half-written or damaged (OSError, JSON, safetensors' own errors): convert again
        return None


def write_conversion(directory: Path, converted: Converted, source: dict) -> bool:
    """Save `converted` into `directory` (written aside, then moved in: a reader never sees half of it).
    False, leaving nothing behind, when the disk refuses (full, read-only): the load goes on without it."""
    from safetensors.numpy import save_file

    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    except OSError:
        return False
    try:
        save_file(converted.state, str(staging / "model.safetensors"), metadata={"format": "pt"})
        (staging / "config.json").write_text(json.dumps(converted.config, indent=2), encoding="utf-8")
        (staging / "tokenizer.json").write_text(converted.tokenizer_json, encoding="utf-8")
        (staging / "tokenizer_config.json").write_text(json.dumps(converted.tokenizer_config, indent=2), encoding="utf-8")
        meta = {"source": source, "file_type": converted.file_type}
        (staging / SOURCE_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        shutil.rmtree(directory, ignore_errors=True)  # an older conversion of a file since changed
        os.replace(staging, directory)
        return True
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        return False


def converted_weights_bytes(directory: Path) -> int | None:
    """The size of a kept conversion's float32 weights (what loading it costs in memory); None if there is none."""
    try:
        return (directory / "model.safetensors").stat().st_size
    except OSError:
        return None


def read_gguf(path: Path, root: Path | None = None, progress: Callable[[str], None] | None = None) -> Converted:
    """The model in the GGUF at `path` (a file, or a directory holding one model), from its kept conversion
    when there is one, else read (and kept, when small enough). Raises GGUFError (GGUFMemoryError when the
    dequantized weights would not fit in memory) with one sentence."""
    progress = progress or (lambda text: None)
    path = find_gguf(path)
    shards = split_parts(path)
    try:
        source = source_of(shards)
    except OSError as error:
        raise GGUFError(f"cannot read '{path}': {error.strerror or error.__class__.__name__}") from None
    directory = conversion_dir(shards, root)
    if (size := converted_weights_bytes(directory)) is not None:
        if problem := memory_problem(path.name, size, size // BYTES_PER_PARAM, available_memory()):
            raise GGUFMemoryError(problem)
        progress(f"reading the conversion of {path.name} kept in {directory.parent}")
        if (kept := read_conversion(directory, source)) is not None:
            return kept
    progress(f"reading {path.name}")
    gguf_file = open_gguf(path)
    gguf_file.check()
    check_memory(gguf_file)
    progress(f"dequantizing {gguf_file.file_type} weights to float32")
    converted = Converted(
        config=gguf_file.config(),
        state=gguf_file.state_dict(),
        tokenizer_json=gguf_file.tokenizer_json(),
        tokenizer_config=gguf_file.tokenizer_config(),
        file_type=gguf_file.file_type,
    )
    if gguf_file.memory_needed <= CONVERSION_LIMIT_BYTES:
        write_conversion(directory, converted, source)
    return converted
