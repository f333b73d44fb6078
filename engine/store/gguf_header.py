"""What a GGUF file's header says about the model in it: architecture, size, file type.

Read with tfund's one GGUF header reader (engine.formats.gguf.read_gguf_header), its metadata arrays
(the tokenizer's 49k strings) skipped: a fraction of a second for any file. The `gguf` package only
names the types.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.formats.gguf import BYTES_PER_PARAM, MAGIC, GGUFLayoutError, file_type_name, read_gguf_header
from engine.store import StoreError


@dataclass(frozen=True)
class GGUFHeader:
    architecture: str  # general.architecture: llama, qwen2, gpt2, ...
    file_type: str  # Q4_1, Q8_0, F16, ... (general.file_type, else the commonest tensor type)
    n_params: int  # numbers in all tensors
    n_layer: int | None  # {arch}.block_count
    n_head: int | None  # {arch}.attention.head_count
    n_head_kv: int | None  # {arch}.attention.head_count_kv
    d_model: int | None  # {arch}.embedding_length
    context_length: int | None  # {arch}.context_length

    @property
    def memory_bytes(self) -> int:
        """The weights once dequantized to float32."""
        return self.n_params * BYTES_PER_PARAM


@dataclass(frozen=True)
class ModelSource:
    """Where a GGUF model came from, for the status line, --json and the trace."""

    source: str  # "smollm2", "ollama", "gguf" (a path)
    path: Path
    file_type: str  # from the GGUF header: Q4_1, Q8_0, F16, ...

    def as_dict(self) -> dict:
        return {"source": self.source, "path": str(self.path), "file_type": self.file_type}

    def label(self) -> str:
        return f"{self.source} (GGUF {self.file_type})"


def describe_file(source: str, path: Path) -> ModelSource:
    """`source` ("smollm2", "ollama", "gguf") and the file type its header names; StoreError if unreadable."""
    return ModelSource(source=source, path=path, file_type=read_header(path).file_type)


def is_gguf(path: Path) -> bool:
    """The file starts with GGUF's magic (False when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def read_header(path: Path) -> GGUFHeader:
    """The header of the GGUF file at `path`; StoreError in one sentence if it is not one."""
    try:
        header = read_gguf_header(path, arrays=False)
    except OSError as error:
        raise StoreError(f"cannot read '{path}': {error.strerror or error}") from None
    except GGUFLayoutError as error:
        raise StoreError(f"'{path}' is not a readable GGUF file ({error})") from None
    fields = header.fields
    architecture = fields.get("general.architecture")
    if not isinstance(architecture, str):
        raise StoreError(f"'{path}' has no general.architecture in its GGUF header")

    def integer(key: str) -> int | None:
        value = fields.get(f"{architecture}.{key}")
        return value if isinstance(value, int) else None

    return GGUFHeader(
        architecture=architecture,
        file_type=file_type_name(fields, header.tensors),
        n_params=sum(tensor.n_elements for tensor in header.tensors),
        n_layer=integer("block_count"),
        n_head=integer("attention.head_count"),
        n_head_kv=integer("attention.head_count_kv"),
        d_model=integer("embedding_length"),
        context_length=integer("context_length"),
    )
