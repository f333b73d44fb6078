"""A GGUF file converted once, kept in tfund's cache as a transformers checkpoint directory.

Reading a GGUF means parsing its metadata (SmolLM2's 49,152 tokens and 48,900 merges) and dequantizing
every tensor: seconds. The conversion (config.json, tokenizer.json, tokenizer_config.json and float32
weights in model.safetensors) loads in a fraction of that, and any transformers tool can open it. It is
kept in tfund's cache (engine.store.cache: where it is, and the size limit, `may_cache_conversion`): a
bigger model's float32 copy would cost more disk than the load it saves (SmolLM2-135M: 538 MB; a 1B model: 4 GB).

A conversion names the file it came from (absolute path, size, modification time of each part) and the
version of the conversion; a file changed since, or a newer tfund, converts again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from engine.formats.gguf import (
    BYTES_PER_PARAM,
    GGUFError,
    GGUFFile,
    GGUFMemoryError,
    available_memory,
    check_memory,
    find_gguf,
    memory_problem,
    open_gguf,
    split_parts,
)
from engine.store.cache import conversions_dir, may_cache_conversion

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


def source_of(shards: tuple[Path, ...]) -> dict:
    """What identifies the GGUF a conversion came from."""
    files = []
    for shard in shards:
        stat = shard.stat()
        files.append({"path": str(shard.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return {"version": CONVERSION_VERSION, "files": files}


def conversion_dir(shards: tuple[Path, ...], root: Path | None = None) -> Path:
    """Where the conversion of this GGUF lives: conversions/{file stem}-{hash of its path}, under `root`
    (a cache folder of its own) or tfund's cache."""
    first = shards[0].resolve()
    digest = hashlib.sha256(str(first).encode("utf-8")).hexdigest()[:16]
    return (root / "conversions" if root else conversions_dir()) / f"{first.stem}-{digest}"


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


class GGUFModelFile:
    """A GGUF model on disk and its conversion in tfund's cache: what the engines load it through.

    model_file = GGUFModelFile("path/to/file.gguf" or a directory holding one model)
    model_file.config()               # config.json of the kept conversion, else from the header
    model_file.converted(progress)    # config, float32 weights, tokenizer: kept, or read and kept
    """

    def __init__(self, path: str | os.PathLike, root: Path | None = None):
        self.path = find_gguf(path)  # GGUFError: none there, several models, not there at all
        self.shards = split_parts(self.path)
        self.directory = conversion_dir(self.shards, root)

    @cached_property
    def source(self) -> dict:
        try:
            return source_of(self.shards)
        except OSError as error:
            raise GGUFError(f"cannot read '{self.path}': {error.strerror or error.__class__.__name__}") from None

    @cached_property
    def opened(self) -> GGUFFile:
        """The file parsed (seconds for a big vocabulary), and checked: GGUFError if tfund cannot run it."""
        gguf_file = open_gguf(self.path)
        gguf_file.check()
        return gguf_file

    def kept_meta(self) -> dict | None:
        """tfund-source.json of a conversion made from this very file by this version; None if there is none."""
        try:
            meta = json.loads((self.directory / SOURCE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) and meta.get("source") == self.source else None

    def kept_text(self, name: str) -> str | None:
        """A file of the kept conversion (config.json, tokenizer.json); None without a current one."""
        if self.kept_meta() is None:
            return None
        try:
            return (self.directory / name).read_text(encoding="utf-8")
        except OSError:
            return None

    def config(self) -> dict:
        if (text := self.kept_text("config.json")) is not None:
            try:
                return json.loads(text)
            except ValueError:
                pass
        return self.opened.config()

    def tokenizer_json(self) -> str:
        kept = self.kept_text("tokenizer.json")
        return kept if kept is not None else self.opened.tokenizer_json()

    def tokenizer_config(self) -> dict:
        if (text := self.kept_text("tokenizer_config.json")) is not None:
            try:
                return json.loads(text)
            except ValueError:
                pass
        return self.opened.tokenizer_config()

    @property
    def file_type(self) -> str:
        meta = self.kept_meta()
        return meta["file_type"] if meta and "file_type" in meta else self.opened.file_type

    def check_memory(self) -> None:
        """GGUFMemoryError when the float32 weights would not fit in the memory available now."""
        weights = self.directory / "model.safetensors"
        if self.kept_meta() is not None and weights.is_file():
            size = weights.stat().st_size
            if problem := memory_problem(self.path.name, size, size // BYTES_PER_PARAM, available_memory()):
                raise GGUFMemoryError(problem)
        else:
            check_memory(self.opened)

    def keepable(self) -> bool:
        """Whether the conversion goes into the cache (its float32 weights within the cache's limit)."""
        return self.kept_meta() is not None or may_cache_conversion(self.opened.memory_needed)

    def keep(self, progress: Callable[[str], None] | None = None) -> Path | None:
        """The directory of the kept conversion (a transformers checkpoint), converting now if there is
        none; None when the model is too big to keep or the cache cannot be written."""
        if self.kept_meta() is None and self.keepable():
            self.converted(progress)
        return self.directory if self.kept_meta() is not None else None

    def converted(self, progress: Callable[[str], None] | None = None) -> Converted:
        """The model, from its kept conversion when there is one, else read (and kept when keepable).
        Raises GGUFError (GGUFMemoryError when the float32 weights would not fit) with one sentence."""
        progress = progress or (lambda text: None)
        self.check_memory()
        if self.kept_meta() is not None:
            progress(f"reading the conversion of {self.path.name} kept in {self.directory.parent}")
            if (kept := read_conversion(self.directory, self.source)) is not None:
                return kept
        progress(f"reading {self.path.name}")
        gguf_file = self.opened
        progress(f"dequantizing {gguf_file.file_type} weights to float32")
        converted = Converted(
            config=gguf_file.config(),
            state=gguf_file.state_dict(),
            tokenizer_json=gguf_file.tokenizer_json(),
            tokenizer_config=gguf_file.tokenizer_config(),
            file_type=gguf_file.file_type,
        )
        if may_cache_conversion(gguf_file.memory_needed):
            write_conversion(self.directory, converted, self.source)
        return converted
