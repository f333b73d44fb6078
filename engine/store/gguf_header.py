"""What a GGUF file's header says about the model in it: architecture, size, file type.

Read by scanning the header alone (gguf's GGUFReader decodes every tokenizer array into Python objects:
3.5 s for SmolLM2). The `gguf` package only names the types.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from engine.store import StoreError

GGUF_MAGIC = b"GGUF"
BYTES_PER_PARAMETER = 4  # the engines run float32: dequantized weights cost 4 bytes a parameter


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
        return self.n_params * BYTES_PER_PARAMETER


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
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def read_header(path: Path) -> GGUFHeader:
    """The header of the GGUF file at `path`; StoreError in one sentence if it is not one."""
    from gguf import GGMLQuantizationType, LlamaFileType

    try:
        with open(path, "rb") as f:
            fields, tensor_types, n_params = scan(f)
    except OSError as error:
        raise StoreError(f"cannot read '{path}': {error.strerror or error}") from None
    except (ValueError, struct.error, UnicodeDecodeError) as error:
        raise StoreError(f"'{path}' is not a readable GGUF file ({error})") from None
    architecture = fields.get("general.architecture")
    if not isinstance(architecture, str):
        raise StoreError(f"'{path}' has no general.architecture in its GGUF header")
    file_type = fields.get("general.file_type")
    if file_type in LlamaFileType._value2member_map_:
        type_name = LlamaFileType(file_type).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    else:  # older writers leave it out: the commonest tensor type says the same
        commonest = Counter(tensor_types).most_common(1)
        known = commonest and commonest[0][0] in GGMLQuantizationType._value2member_map_
        type_name = GGMLQuantizationType(commonest[0][0]).name if known else "unknown"

    def integer(key: str) -> int | None:
        value = fields.get(f"{architecture}.{key}")
        return value if isinstance(value, int) else None

    return GGUFHeader(
        architecture=architecture,
        file_type=type_name,
        n_params=n_params,
        n_layer=integer("block_count"),
        n_head=integer("attention.head_count"),
        n_head_kv=integer("attention.head_count_kv"),
        d_model=integer("embedding_length"),
        context_length=integer("context_length"),
    )


# ---- the header's layout (GGUF v2 and v3): magic, version, tensor count, key-value count, the
# key-value pairs, then one info record per tensor (name, dims, type, offset); the data follows. --------
SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}  # value type → struct code
STRING, ARRAY = 8, 9


def scan(f: BinaryIO) -> tuple[dict, list[int], int]:
    """(scalar and string fields, each tensor's type, total parameters) of the GGUF file `f`.

    Arrays (the tokenizer's 49k tokens, ...) are skipped, not decoded: the whole header of a 100 MB
    file is read in a fraction of a second. ValueError or struct.error on anything else.
    """
    if f.read(4) != GGUF_MAGIC:
        raise ValueError("it does not start with the GGUF magic")
    order = "<"
    (version,) = struct.unpack("<I", exact(f, 4))
    if version > 0xFFFF:  # a big-endian file
        order, version = ">", struct.unpack(">I", struct.pack("<I", version))[0]
    if version not in (2, 3):
        raise ValueError(f"GGUF version {version} (tfund reads versions 2 and 3)")
    n_tensors, n_fields = struct.unpack(f"{order}QQ", exact(f, 16))
    fields = {}
    for _ in range(n_fields):
        key = read_string(f, order)
        (value_type,) = struct.unpack(f"{order}I", exact(f, 4))
        fields[key] = read_value(f, order, value_type)
    types, n_params = [], 0
    for _ in range(n_tensors):
        read_string(f, order)
        (n_dims,) = struct.unpack(f"{order}I", exact(f, 4))
        dims = struct.unpack(f"{order}{n_dims}Q", exact(f, 8 * n_dims))
        tensor_type, _offset = struct.unpack(f"{order}IQ", exact(f, 12))
        types.append(tensor_type)
        n_params += math.prod(dims)
    return fields, types, n_params


def exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ValueError("it ends inside its header (a truncated file)")
    return data


def read_string(f: BinaryIO, order: str) -> str:
    (length,) = struct.unpack(f"{order}Q", exact(f, 8))
    return exact(f, length).decode("utf-8")


def read_value(f: BinaryIO, order: str, value_type: int) -> object:
    """A scalar or string; an array is skipped (None)."""
    if value_type in SCALARS:
        code = SCALARS[value_type]
        return struct.unpack(f"{order}{code}", exact(f, struct.calcsize(code)))[0]
    if value_type == STRING:
        return read_string(f, order)
    if value_type != ARRAY:
        raise ValueError(f"unknown value type {value_type} in its header")
    item_type, count = struct.unpack(f"{order}IQ", exact(f, 12))
    if item_type in SCALARS:
        f.seek(count * struct.calcsize(SCALARS[item_type]), 1)
    else:
        for _ in range(count):
            read_value(f, order, item_type)  # strings (and nested arrays) have their own lengths
    return None
