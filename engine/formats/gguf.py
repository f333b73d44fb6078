"""Read a GGUF file (llama.cpp's format, also Ollama's and LM Studio's) into what a transformers
checkpoint directory holds: an HF config dict, float32 tensors under Hugging Face names and a tokenizer.json.

Pure NumPy: tfund's own header reader (read_gguf_header, below: the file memory-mapped, its header
parsed in a fraction of a second where gguf's GGUFReader takes 7 s on SmolLM2) and llama.cpp's `gguf`
package, which names the types and dequantizes the tensors; neither torch nor transformers is imported.
Three architectures: llama (llama.cpp writes Mistral and SmolLM as llama too), qwen2 and gpt2. What llama.cpp's converter changed, undone here:
- the rows of Q and K of `llama` models are permuted for its RoPE kernel (qwen2 and gpt2: not);
- GPT-2's Conv1D weights ([in, out]) are stored transposed, like every other linear ([out, in]);
- Llama 3.1+ RoPE scaling is a `rope_freqs` tensor (one divisor per frequency): it becomes
  transformers' rope_scaling {"rope_type": "llama3", ...} again, or the file is refused.
The tokenizer is rebuilt from the vocabulary in the metadata: byte-level BPE (GPT-2, Llama 3, Qwen2,
SmolLM; split as the file's pre-tokenizer says) or SentencePiece BPE (Llama 2, Mistral, TinyLlama).

    gguf = open_gguf("model.gguf")                 # header and metadata; tensors stay on disk
    check_memory(gguf)                             # 4 bytes a parameter once dequantized
    config, state = gguf.config(), gguf.state_dict()
    tokenizer_json = gguf.tokenizer_json()         # loads with tokenizers.Tokenizer.from_str

Every refusal is a GGUFError whose text is one sentence.
"""

from __future__ import annotations

import math
import mmap
import os
import re
import struct
from collections import Counter
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np

ARCHITECTURES = ("llama", "qwen2", "gpt2")
BYTES_PER_PARAM = 4  # every tensor becomes float32
MAGIC = b"GGUF"
SPLIT_NAME = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)

# Text splitting before BPE, by `tokenizer.ggml.pre` (llama.cpp's names for the tokenizers it knows).
GPT2_SPLIT = "gpt2"  # GPT-2's regex, built into tokenizers' ByteLevel
DIGITS_THEN_GPT2 = "digits"  # every digit alone, then GPT-2's regex (SmolLM, StarCoder)
LLAMA3_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
PRE_TOKENIZERS = {
    "default": GPT2_SPLIT,  # files written before llama.cpp named pre-tokenizers
    "gpt-2": GPT2_SPLIT,
    "smollm": DIGITS_THEN_GPT2,
    "starcoder": DIGITS_THEN_GPT2,
    "refact": DIGITS_THEN_GPT2,
    "codeshell": DIGITS_THEN_GPT2,
    "llama-bpe": LLAMA3_SPLIT,
    "llama3": LLAMA3_SPLIT,
    "llama-v3": LLAMA3_SPLIT,
    "smaug-bpe": LLAMA3_SPLIT,
    "qwen2": QWEN2_SPLIT,
    "deepseek-r1-qwen": QWEN2_SPLIT,
}
WHOLE_WORDS_FIRST = {"llama-bpe", "llama3", "llama-v3", "smaug-bpe"}  # Llama 3: a word in the vocabulary is one token (ignore_merges)
CONTROL, USER_DEFINED = 3, 4  # tokenizer.ggml.token_type values

# Tensor names: GGUF -> Hugging Face. Inside a block, `blk.{i}.` becomes the family's layer prefix.
LLAMA_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
LLAMA_BLOCK_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_output.bias": "self_attn.o_proj.bias",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
GPT2_NAMES = {
    "token_embd.weight": "transformer.wte.weight",
    "position_embd.weight": "transformer.wpe.weight",
    "output_norm.weight": "transformer.ln_f.weight",
    "output_norm.bias": "transformer.ln_f.bias",
    "output.weight": "lm_head.weight",
}
GPT2_BLOCK_NAMES = {
    "attn_norm.weight": "ln_1.weight",
    "attn_norm.bias": "ln_1.bias",
    "attn_qkv.weight": "attn.c_attn.weight",
    "attn_qkv.bias": "attn.c_attn.bias",
    "attn_output.weight": "attn.c_proj.weight",
    "attn_output.bias": "attn.c_proj.bias",
    "ffn_norm.weight": "ln_2.weight",
    "ffn_norm.bias": "ln_2.bias",
    "ffn_up.weight": "mlp.c_fc.weight",
    "ffn_up.bias": "mlp.c_fc.bias",
    "ffn_down.weight": "mlp.c_proj.weight",
    "ffn_down.bias": "mlp.c_proj.bias",
}
GPT2_CONV1D = ("attn_qkv.weight", "attn_output.weight", "ffn_up.weight", "ffn_down.weight")  # stored [out, in]; GPT-2 keeps [in, out]
ROPE_FREQS = "rope_freqs.weight"  # Llama 3 RoPE scaling: not a parameter, it goes into the config


class GGUFError(Exception):
    """A GGUF file tfund cannot read or run; str(error) is one sentence."""


class GGUFMemoryError(GGUFError):
    """The model, dequantized to float32, needs more memory than is available."""


def open_gguf(path: str | os.PathLike) -> GGUFFile:
    """Parse the header, metadata and tensor index of `path` (a file, or the first of a split set).

    Raises GGUFError for a missing file, wrong magic, a truncated or damaged file or a tensor type the
    gguf package does not know. A file tfund cannot run still opens: `GGUFFile.refusal()` says why.
    """
    path = Path(path)
    shards = [path]
    first = _read_shard(path)
    count = int(first.fields.get("split.count") or 1)
    if count > 1:
        match = SPLIT_NAME.match(path.name)
        if match is None or int(match["index"]) != 1:
            raise GGUFError(
                f"'{path}' is one part of a model split into {count} files; pass the first, named like *-00001-of-{count:05d}.gguf"
            )
        shards = list(split_parts(path))
        if missing := [shard.name for shard in shards if not shard.is_file()]:
            raise GGUFError(f"'{path}' is split into {count} files and {', '.join(missing)} is missing next to it")
    headers = [first] + [_read_shard(shard) for shard in shards[1:]]
    tensors = {tensor.name: tensor for header in headers for tensor in header.tensors}
    return GGUFFile(path=path, metadata=first.fields, tensors=tensors, shards=tuple(shards))


def _read_shard(path: Path) -> RawHeader:
    """One file's header, metadata arrays included, its failures turned into one sentence each."""
    try:
        with open(path, "rb") as f:
            magic = f.read(len(MAGIC))
        size = path.stat().st_size
    except OSError as error:
        raise GGUFError(f"cannot read '{path}': {error.strerror or error.__class__.__name__}") from None
    if magic != MAGIC:
        raise GGUFError(f"'{path}' is not a GGUF file: it starts with {magic!r}, not {MAGIC!r}")
    try:
        header = read_gguf_header(path, arrays=True)
    except GGUFLayoutError as error:
        if error.version is not None:
            raise GGUFError(f"'{path}' is GGUF version {error.version}; tfund reads versions 2 and 3") from None
        raise _damaged(path, size) from None
    except OSError as error:
        raise GGUFError(f"cannot read '{path}': {error.strerror or error.__class__.__name__}") from None
    if unknown := [tensor.type_number for tensor in header.tensors if tensor.type_number not in ggml_type_names()]:
        raise GGUFError(
            f"'{path}' holds tensors of type number {unknown[0]}, a quantization the gguf package does not know "
            "(a newer llama.cpp may have written it; try a newer `gguf` package or another quantization of the model)"
        )
    for tensor in header.tensors:  # tensor data is mapped lazily: check that it is all there
        if tensor.data_offset + tensor.n_bytes > size:
            raise _damaged(path, size)
    return header


def _damaged(path: Path, size: int) -> GGUFError:
    return GGUFError(
        f"'{path}' is truncated or damaged: its header or tensor data ends early ({size:,} bytes), so download or copy it again"
    )


# ---- the file's layout (GGUF v2 and v3, either byte order): magic, version, tensor count, key-value count,
# the key-value pairs, one info record per tensor (name, dims innermost first, type, offset), padding to
# general.alignment, then the tensors' data. One reader for the whole project: the model store's quick
# header scans (engine.store.gguf_header: arrays skipped) and the engines' loads (arrays decoded). ----------
VALUE_TYPES = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}  # -> struct (and NumPy) code
STRING, ARRAY = 8, 9
DEFAULT_ALIGNMENT = 32
PLAIN_TYPES = {0: "f4", 1: "f2", 24: "i1", 25: "i2", 26: "i4", 27: "i8", 28: "f8"}  # ggml types stored as plain numbers


@cache
def ggml_type_names() -> dict[int, str]:
    """ggml's tensor types the gguf package knows: number -> name ("Q4_1")."""
    from gguf import GGMLQuantizationType

    return {member.value: member.name for member in GGMLQuantizationType}


class GGUFLayoutError(ValueError):
    """The bytes are not a GGUF header tfund reads; str() says why in a few words ("it ends inside its header")."""

    def __init__(self, reason: str, version: int | None = None):
        super().__init__(reason)
        self.version = version  # an unsupported version number, when that is the reason


@dataclass(frozen=True, eq=False)
class GGUFTensor:
    """One tensor's record in a GGUF header, and its data as a view of the memory-mapped file."""

    name: str
    shape: tuple[int, ...]  # GGUF's order, innermost first: [d, vocab] for the embedding
    type_number: int  # ggml's type (gguf.GGMLQuantizationType's value)
    data_offset: int  # bytes from the start of the file
    buffer: Any = field(repr=False)  # the mapped file
    byte_order: str = "<"

    @property
    def tensor_type(self) -> Any:
        from gguf import GGMLQuantizationType

        return GGMLQuantizationType(self.type_number)

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)

    @property
    def n_bytes(self) -> int:
        from gguf import GGML_QUANT_SIZES

        block_size, type_size = GGML_QUANT_SIZES[self.tensor_type]
        return self.n_elements * type_size // block_size

    @property
    def data(self) -> np.ndarray:
        """Plain types: the numbers, in NumPy's order ([vocab, d]); quantized ones: the raw blocks, uint8
        [..., bytes per row], as gguf.quants.dequantize reads them."""
        rows = tuple(reversed(self.shape))
        if self.type_number in PLAIN_TYPES:
            dtype = np.dtype(PLAIN_TYPES[self.type_number]).newbyteorder(self.byte_order)
            data = np.frombuffer(self.buffer, dtype, self.n_elements, self.data_offset).reshape(rows)
            return data if dtype.isnative else data.astype(dtype.newbyteorder("="))
        from gguf.quants import quant_shape_to_byte_shape

        raw = np.frombuffer(self.buffer, np.uint8, self.n_bytes, self.data_offset)
        return raw.reshape(quant_shape_to_byte_shape(rows, self.tensor_type))


@dataclass(frozen=True, eq=False)
class RawHeader:
    """What a GGUF file's header holds, as written."""

    fields: dict[str, Any]  # key -> value; an array is a list, or None when it was skipped
    tensors: list[GGUFTensor]


class _Cursor:
    """Reads a GGUF header from a buffer (the mapped file), front to back."""

    def __init__(self, buffer: Any):
        self.buffer, self.at, self.order = buffer, 0, "<"

    def take(self, n: int) -> int:  # -> where the n bytes start
        start, self.at = self.at, self.at + n
        if self.at > len(self.buffer):
            raise GGUFLayoutError("it ends inside its header (a truncated file)")
        return start

    def number(self, code: str) -> Any:
        return struct.unpack_from(self.order + code, self.buffer, self.take(struct.calcsize(code)))[0]

    def string(self) -> str:
        length = self.number("Q")
        start = self.take(length)
        return bytes(self.buffer[start : start + length]).decode("utf-8")

    def value(self, value_type: int, arrays: bool) -> Any:
        """A scalar, a string, or an array (a list; None, skipped, when not `arrays`)."""
        if value_type in VALUE_TYPES:
            return self.number(VALUE_TYPES[value_type])
        if value_type == STRING:
            return self.string()
        if value_type != ARRAY:
            raise GGUFLayoutError(f"unknown value type {value_type} in its header")
        item_type, count = self.number("I"), self.number("Q")
        if item_type in VALUE_TYPES:  # numbers: one slice of the buffer
            dtype = np.dtype(self.order + VALUE_TYPES[item_type])
            start = self.take(count * dtype.itemsize)
            return np.frombuffer(self.buffer, dtype, count, start).tolist() if arrays else None
        items = [self.value(item_type, arrays) for _ in range(count)]  # strings (and nested arrays) have their own lengths
        return items if arrays else None


def scan_gguf(buffer: Any, arrays: bool = True) -> RawHeader:
    """The header at the start of `buffer` (bytes or a mapped file). `arrays=False` skips decoding the
    metadata's arrays (a tokenizer's 49k strings): a fraction of a second for any file. GGUFLayoutError
    (a ValueError) on anything else."""
    cursor = _Cursor(buffer)
    if bytes(buffer[: len(MAGIC)]) != MAGIC:
        raise GGUFLayoutError("it does not start with the GGUF magic")
    cursor.take(len(MAGIC))
    version = cursor.number("I")
    if version > 0xFFFF:  # a big-endian file
        cursor.order, version = ">", int.from_bytes(version.to_bytes(4, "little"), "big")
    if version not in (2, 3):
        raise GGUFLayoutError(f"GGUF version {version} (tfund reads versions 2 and 3)", version)
    n_tensors, n_fields = cursor.number("Q"), cursor.number("Q")
    fields = {}
    for _ in range(n_fields):
        key = cursor.string()
        fields[key] = cursor.value(cursor.number("I"), arrays)
    records = []
    for _ in range(n_tensors):
        name = cursor.string()
        n_dims = cursor.number("I")
        shape = tuple(cursor.number("Q") for _ in range(n_dims))
        records.append((name, shape, cursor.number("I"), cursor.number("Q")))
    alignment = fields.get("general.alignment") or DEFAULT_ALIGNMENT
    data_start = -(-cursor.at // alignment) * alignment
    tensors = [GGUFTensor(name, shape, kind, data_start + offset, buffer, cursor.order) for name, shape, kind, offset in records]
    return RawHeader(fields, tensors)


def file_type_name(fields: dict, tensors: Any) -> str:
    """llama.cpp's name for a file's quantization ("Q4_1", "Q4_K_M", "F16"), from general.file_type, else
    (older writers leave it out) the commonest type of its matrices; "unknown" for a type gguf does not know."""
    from gguf import LlamaFileType

    try:
        name = LlamaFileType(int(fields["general.file_type"])).name
    except (KeyError, ValueError, TypeError):
        name = "GUESSED"
    if name != "GUESSED":
        return name.removeprefix("MOSTLY_").removeprefix("ALL_")
    counts = Counter(tensor.type_number for tensor in tensors if len(tensor.shape) == 2)
    return ggml_type_names().get(counts.most_common(1)[0][0], "unknown") if counts else "F32"


def read_gguf_header(path: Path, arrays: bool = True) -> RawHeader:
    """The header of the GGUF file at `path`, the file memory-mapped (tensor data is read only when
    used). OSError if it cannot be read; GGUFLayoutError if it is not a GGUF file tfund reads."""
    with open(path, "rb") as f:
        try:
            buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            raise GGUFLayoutError("it does not start with the GGUF magic") from None
    try:
        return scan_gguf(buffer, arrays)
    except (struct.error, UnicodeDecodeError, OverflowError, MemoryError) as error:
        raise GGUFLayoutError(f"its header is damaged ({error.__class__.__name__})") from None


@dataclass(frozen=True, eq=False)
class GGUFFile:
    """An opened GGUF model: metadata read, tensors memory-mapped, nothing dequantized (GGUFTensor)."""

    path: Path
    metadata: dict[str, Any]  # llama.cpp's keys, e.g. "llama.block_count", "tokenizer.ggml.tokens"
    tensors: dict[str, GGUFTensor]  # GGUF name -> its record and mapped data
    shards: tuple[Path, ...] = ()  # the files of a split model, in order (one for a single file)

    # ---- what the header says ----

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    @cached_property
    def file_type(self) -> str:
        """llama.cpp's name for the file's quantization ("Q4_1", "Q4_K_M", "F16")."""
        return file_type_name(self.metadata, self.tensors.values())

    @property
    def n_params(self) -> int:
        return sum(int(tensor.n_elements) for name, tensor in self.tensors.items() if name != ROPE_FREQS)

    @property
    def memory_needed(self) -> int:
        """Bytes the weights take once dequantized to float32."""
        return BYTES_PER_PARAM * self.n_params

    def key(self, name: str, default: Any = ...) -> Any:
        """The architecture's own metadata key, e.g. key("block_count") reads "llama.block_count"."""
        full_name = f"{self.architecture}.{name}"
        if full_name in self.metadata:
            return self.metadata[full_name]
        if default is ...:
            raise GGUFError(f"'{self.path}' has no '{full_name}' in its metadata, so its {self.architecture} model cannot be rebuilt")
        return default

    # ---- can tfund run it ----

    def refusal(self) -> str | None:
        """Why tfund cannot run this file, in one sentence; None if it can."""
        name = f"'{self.path.name}'"
        if self.architecture not in ARCHITECTURES:
            return (
                f"{name} is a '{self.architecture}' model; tfund runs GGUF files of the llama (also Mistral and SmolLM), "
                "qwen2 and gpt2 architectures"
            )
        if problem := self._tensor_problem():
            return f"{name} {problem}"
        if problem := self._tokenizer_problem():
            return f"{name} {problem}"
        if self.architecture != "gpt2" and (problem := self._rope_problem()):
            return f"{name} {problem}"
        return None

    def check(self) -> None:
        """Raise GGUFError with refusal() when tfund cannot run this file."""
        if problem := self.refusal():
            raise GGUFError(problem)

    def _tensor_problem(self) -> str | None:
        from gguf.quants import dequantize

        readable = set()
        for name, tensor in self.tensors.items():
            if name != ROPE_FREQS and self.hf_name(name) is None:
                return f"holds a tensor tfund does not know for a {self.architecture} model ({name})"
            if tensor.tensor_type in readable:
                continue
            try:  # one row of each type tells whether the gguf package can dequantize it
                dequantize(tensor.data.reshape(-1, tensor.data.shape[-1])[:1], tensor.tensor_type)
            except NotImplementedError:
                return (
                    f"stores {name} as {tensor.tensor_type.name}, which the gguf package cannot dequantize; "
                    "use another quantization of the model (F16, Q8_0, Q4_K_M and most others read fine)"
                )
            readable.add(tensor.tensor_type)
        for needed in ("token_embd.weight", "output_norm.weight"):
            if needed not in self.tensors:
                return f"has no {needed} tensor, so it is not a complete {self.architecture} model"
        return None

    def _tokenizer_problem(self) -> str | None:
        model = self.metadata.get("tokenizer.ggml.model")
        if "tokenizer.ggml.tokens" not in self.metadata:
            return "has no tokenizer in its metadata (tokenizer.ggml.tokens)"
        if model == "llama":
            return None
        if model != "gpt2":
            return f"has a '{model}' tokenizer; tfund builds BPE tokenizers only (tokenizer.ggml.model 'gpt2' or 'llama')"
        pre = self.metadata.get("tokenizer.ggml.pre", "default")
        if pre not in PRE_TOKENIZERS:
            return f"splits text with the pre-tokenizer '{pre}', which tfund does not know (it knows {', '.join(sorted(PRE_TOKENIZERS))})"
        return None

    def _rope_problem(self) -> str | None:
        scaling = self.key("rope.scaling.type", "none")
        if scaling not in ("none", "linear"):
            return f"uses '{scaling}' RoPE scaling, which tfund does not implement (it applies linear and Llama 3 scaling)"
        if self.key("rope.dimension_count", self.head_dim) != self.head_dim:
            return f"rotates {self.key('rope.dimension_count')} of each head's {self.head_dim} dimensions; tfund's RoPE rotates them all"
        if ROPE_FREQS in self.tensors and self._llama3_rope_scaling() is None:
            return "scales RoPE with a rope_freqs tensor that does not follow Llama 3's rule, so tfund cannot apply it"
        return None

    # ---- the transformers checkpoint it stands for ----

    @property
    def head_dim(self) -> int:
        return int(self.key("attention.key_length", self.key("embedding_length") // self.key("attention.head_count")))

    def config(self) -> dict:
        """The config.json a transformers checkpoint of this model would have."""
        self.check()
        common = {
            "vocab_size": int(self.tensors["token_embd.weight"].shape[-1]),  # GGUF lists dims innermost first: [d, vocab]
            "tie_word_embeddings": self._tied(),
            "bos_token_id": self.metadata.get("tokenizer.ggml.bos_token_id"),
            "eos_token_id": self._end_of_text_ids(),
        }
        if self.architecture == "gpt2":
            d = int(self.key("embedding_length"))
            d_ff = int(self.key("feed_forward_length", 4 * d))
            return common | {
                "model_type": "gpt2",
                "architectures": ["GPT2LMHeadModel"],
                "n_layer": int(self.key("block_count")),
                "n_head": int(self.key("attention.head_count")),
                "n_embd": d,
                "n_inner": None if d_ff == 4 * d else d_ff,
                "n_positions": int(self.key("context_length")),
                "layer_norm_epsilon": as_decimal(self.key("attention.layer_norm_epsilon")),
                "activation_function": "gelu_new",
            }
        model_type = self.architecture  # "llama" or "qwen2"
        n_head = int(self.key("attention.head_count"))
        config = common | {
            "model_type": model_type,
            "architectures": ["LlamaForCausalLM" if model_type == "llama" else "Qwen2ForCausalLM"],
            "num_hidden_layers": int(self.key("block_count")),
            "num_attention_heads": n_head,
            "num_key_value_heads": int(self.key("attention.head_count_kv", n_head)),
            "hidden_size": int(self.key("embedding_length")),
            "intermediate_size": int(self.key("feed_forward_length")),
            "head_dim": self.head_dim,
            "max_position_embeddings": int(self.key("context_length")),
            "rms_norm_eps": as_decimal(self.key("attention.layer_norm_rms_epsilon")),
            "rope_theta": as_decimal(self.key("rope.freq_base", 10000.0)),
            "rope_scaling": self._rope_scaling(),
            "hidden_act": "silu",
        }
        if model_type == "llama":
            config["attention_bias"] = "blk.0.attn_q.bias" in self.tensors
            config["mlp_bias"] = False
        else:
            config["use_sliding_window"] = False
        return config

    def _end_of_text_ids(self) -> int | list[int] | None:
        """The end-of-text id, and the end-of-turn ones an instruction model also stops at (Llama 3's
        <|eot_id|>): one id, or a list as config.json writes several."""
        keys = ("eos_token_id", "eot_token_id", "eom_token_id")
        ids = list(dict.fromkeys(int(i) for key in keys if (i := self.metadata.get(f"tokenizer.ggml.{key}")) is not None))
        return ids[0] if len(ids) == 1 else ids or None

    def _tied(self) -> bool:
        """The output layer is the embedding: no output.weight, or (gpt2 files) an identical copy of it."""
        output = self.tensors.get("output.weight")
        if output is None:
            return True
        embedding = self.tensors["token_embd.weight"]
        return self.architecture == "gpt2" and output.tensor_type == embedding.tensor_type and np.array_equal(output.data, embedding.data)

    def _rope_scaling(self) -> dict | None:
        if ROPE_FREQS in self.tensors:
            return self._llama3_rope_scaling()
        if self.key("rope.scaling.type", "none") == "linear":
            return {"rope_type": "linear", "factor": float(self.key("rope.scaling.factor"))}
        return None

    def _llama3_rope_scaling(self) -> dict | None:
        divisors = _dequantized(self.tensors[ROPE_FREQS]).reshape(-1).astype(np.float64)  # [head_dim / 2]
        return llama3_rope_scaling(
            divisors, float(self.key("rope.freq_base", 10000.0)), self.head_dim, self.key("rope.scaling.original_context_length", None)
        )

    def hf_name(self, name: str) -> str | None:
        """The Hugging Face checkpoint name of GGUF tensor `name`; None if this architecture has none."""
        top, block, layer_prefix = (
            (GPT2_NAMES, GPT2_BLOCK_NAMES, "transformer.h")
            if self.architecture == "gpt2"
            else (LLAMA_NAMES, LLAMA_BLOCK_NAMES, "model.layers")
        )
        if name in top:
            return top[name]
        match = re.fullmatch(r"blk\.(\d+)\.(.+)", name)
        if match and match[2] in block:
            return f"{layer_prefix}.{match[1]}.{block[match[2]]}"
        return None

    def state_dict(self) -> dict[str, np.ndarray]:
        """Every weight dequantized to float32 under its Hugging Face name, laid out as transformers keeps it."""
        self.check()
        n_head = int(self.key("attention.head_count"))
        n_kv_head = int(self.key("attention.head_count_kv", n_head))
        tied = self._tied()
        state = {}
        for name, tensor in self.tensors.items():
            if name == ROPE_FREQS or (name == "output.weight" and tied):
                continue
            array = _dequantized(tensor)  # [out, in] for a linear layer
            part = name.split(".", 2)[-1]  # "attn_q.weight" of "blk.0.attn_q.weight"
            if self.architecture == "llama" and part in ("attn_q.weight", "attn_q.bias"):
                array = unpermute_rope_rows(array, n_head)
            elif self.architecture == "llama" and part in ("attn_k.weight", "attn_k.bias"):
                array = unpermute_rope_rows(array, n_kv_head)
            elif self.architecture == "gpt2" and name.startswith("blk.") and part in GPT2_CONV1D:
                array = np.ascontiguousarray(array.T)  # [in, out]
            state[self.hf_name(name)] = array
        return state

    def tokenizer_config(self) -> dict:
        """The tokenizer_config.json that goes with tokenizer_json(): special tokens, BOS rule, chat template."""
        tokens = self.metadata.get("tokenizer.ggml.tokens", [])

        def token(key):
            index = self.metadata.get(f"tokenizer.ggml.{key}")
            return tokens[index] if index is not None and 0 <= index < len(tokens) else None

        config = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": token("bos_token_id"),
            "eos_token": token("eos_token_id"),
            "add_bos_token": adds_bos(self.metadata),
            "clean_up_tokenization_spaces": False,
            "model_max_length": int(self.key("context_length", 0)) or None,
        }
        if template := self.metadata.get("tokenizer.chat_template"):
            config["chat_template"] = template
        return config

    def tokenizer_json(self) -> str:
        """A tokenizer.json (byte-level BPE) built from the file's vocabulary, merges and pre-tokenizer."""
        self.check()
        return build_tokenizer(self.metadata).to_str()


def as_decimal(value: float) -> float:
    """A float32 from the file as the decimal it was written from (1e-05, not 9.999999747378752e-06)."""
    return float(str(np.float32(value)))


def _dequantized(tensor: Any) -> np.ndarray:
    """A tensor as float32 in NumPy's order ([out, in] for a linear layer), copied out of the mapped file."""
    from gguf.quants import dequantize

    return np.array(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)  # F32 is a view of the file until copied


def unpermute_rope_rows(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's row order of a Q or K projection ([n_head * head_dim, ...] or a bias).

    In each head, llama.cpp stores the rows as pairs (0, half), (1, half + 1), ...: the layout of its
    RoPE kernel, which rotates adjacent dimensions. transformers rotates dimension i with i + half.
    """
    rows = weight.shape[0]
    pairs = weight.reshape(n_head, rows // n_head // 2, 2, *weight.shape[1:])  # [head, half, 2, ...]
    return np.ascontiguousarray(pairs.swapaxes(1, 2).reshape(weight.shape))  # [head, 2, half, ...] -> rows


def llama3_rope_frequency_divisors(scaling: dict, theta: float, head_dim: int) -> np.ndarray:
    """Llama 3's RoPE scaling as one divisor per frequency (what llama.cpp stores as rope_freqs).

    Wavelengths shorter than original/high_freq_factor keep their frequency (divisor 1); longer than
    original/low_freq_factor are slowed by `factor`; in between, the inverse divisor blends linearly
    in original/wavelength.
    """
    inv_freq = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)  # [head_dim / 2]
    wavelength = 2 * np.pi / inv_freq
    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    original = scaling["original_max_position_embeddings"]
    smooth = np.clip((original / wavelength - low) / (high - low), 0.0, 1.0)  # 0: slowed fully, 1: kept
    return 1.0 / ((1.0 - smooth) / factor + smooth)


def llama3_rope_scaling(divisors: np.ndarray, theta: float, head_dim: int, original: int | None = None) -> dict | None:
    """transformers' llama3 rope_scaling whose divisors are `divisors` (to 1e-4); None if none is.

    Only the wavelengths original/low_freq_factor and original/high_freq_factor matter. Two or more
    blended frequencies fix both (low_freq_factor is taken as 1 unless the file states the original
    context length). With fewer, `original` is the longest whole context the slowed frequencies allow.
    """
    if divisors.shape != (head_dim // 2,) or not np.all(np.isfinite(divisors)) or divisors.min() < 1 - 1e-6:
        return None
    factor = float(divisors.max())
    if factor <= 1 + 1e-6:
        return None
    x = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim) / (2 * np.pi)  # 1 / wavelength
    kept, slowed = divisors < 1 + 1e-6, divisors > factor * (1 - 1e-6)
    blended = ~kept & ~slowed
    smooth = (1 / divisors - 1 / factor) / (1 - 1 / factor)  # 0 slowed .. 1 kept; = (original * x - low) / (high - low)
    if blended.sum() >= 2:
        slope, intercept = np.polyfit(x[blended], smooth[blended], 1)
        x_low, x_high = -intercept / slope, (1 - intercept) / slope  # where smooth is 0 and where it is 1
        if original is None:
            original = 1 / x_low
    elif slowed.any():
        lowest = x[slowed].max()  # x_low may not be below a slowed frequency ...
        if blended.any() and kept.any():  # ... nor so low that the line through the blended one reaches a kept one
            x_blend, s_blend = x[blended][0], smooth[blended][0]
            lowest = max(lowest, (x_blend - s_blend * x[kept].min()) / (1 - s_blend))
        original = original or math.floor(1 / lowest)
        x_low = 1 / original
        if blended.any():  # the line from (x_low, 0) through the blended point
            x_high = x_low + (x[blended][0] - x_low) / smooth[blended][0]
        else:
            x_high = x[kept].min() if kept.any() else 2 * x.max()
    else:
        return None
    original = round(original)  # a whole context length, as configs write it; the check below says if it still fits
    scaling = {
        "rope_type": "llama3",
        "factor": round(factor, 6),
        "low_freq_factor": float(round(original * x_low, 6)),
        "high_freq_factor": float(round(original * x_high, 6)),
        "original_max_position_embeddings": original,
    }
    if not np.allclose(llama3_rope_frequency_divisors(scaling, theta, head_dim), divisors, rtol=1e-4, atol=0):
        return None
    return scaling


# ---- the tokenizer ----


def byte_level_alphabet() -> dict[int, str]:
    """GPT-2's spelling of bytes as printable characters: printable Latin-1 stays, the rest moves to 256+."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [byte for byte in range(256) if byte not in printable]
    return {byte: chr(byte) for byte in printable} | {byte: chr(256 + n) for n, byte in enumerate(others)}


def build_tokenizer(metadata: dict) -> Any:
    """tokenizers.Tokenizer for the vocabulary stored as GGUF metadata: byte-level BPE (tokenizer.ggml.model
    "gpt2": GPT-2, Llama 3, Qwen2, SmolLM) or SentencePiece BPE ("llama": Llama 2, Mistral, TinyLlama)."""
    from tokenizers import AddedToken, processors

    tokens = metadata["tokenizer.ggml.tokens"]
    token_types = metadata.get("tokenizer.ggml.token_type") or [1] * len(tokens)
    if metadata.get("tokenizer.ggml.model") == "llama":
        tokenizer, spelled = sentencepiece_tokenizer(metadata), list(tokens)
        control = [token for token, kind in zip(tokens, token_types) if kind == CONTROL]
    else:
        tokenizer, spelled = byte_level_tokenizer(metadata)
        # a control token spelled outside the byte alphabet is a mislabel (no text makes it): left alone
        control = [token for token, kind, spelling in zip(tokens, token_types, spelled) if kind == CONTROL and token == spelling]
    # control tokens (<|endoftext|>, <s>) are matched whole in text and are special; user-defined ones
    # (<think>) are matched whole but are not special
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in control])
    user_defined = [token for token, kind, spelling in zip(tokens, token_types, spelled) if kind == USER_DEFINED and token == spelling]
    tokenizer.add_tokens([AddedToken(token, special=False, normalized=False) for token in user_defined])
    bos_id = metadata.get("tokenizer.ggml.bos_token_id")
    if adds_bos(metadata) and bos_id is not None:
        bos = spelled[bos_id]
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
        )
    return tokenizer


def adds_bos(metadata: dict) -> bool:
    """Whether encoding puts BOS first: the file's flag, else llama.cpp's default (yes for SentencePiece vocabularies)."""
    return bool(metadata.get("tokenizer.ggml.add_bos_token", metadata.get("tokenizer.ggml.model") == "llama"))


def byte_level_tokenizer(metadata: dict) -> tuple[Any, list[str]]:
    """GPT-2-style BPE over bytes spelled as characters, split first by the file's pre-tokenizer; and the
    vocabulary as spelled in it (a token written outside the byte alphabet is re-spelled byte by byte)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    spelling = byte_level_alphabet()
    alphabet = set(spelling.values())
    tokens = metadata["tokenizer.ggml.tokens"]
    spelled = [token if set(token) <= alphabet else "".join(spelling[b] for b in token.encode("utf-8")) for token in tokens]
    merges = [tuple(merge.split(" ", 1)) for merge in metadata.get("tokenizer.ggml.merges", [])]
    pre = metadata.get("tokenizer.ggml.pre", "default")
    tokenizer = Tokenizer(
        models.BPE(
            vocab={token: index for index, token in enumerate(spelled)},
            merges=merges,
            fuse_unk=False,
            byte_fallback=False,
            ignore_merges=pre in WHOLE_WORDS_FIRST,
        )
    )
    split = PRE_TOKENIZERS[pre]
    if split == GPT2_SPLIT:
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif split == DIGITS_THEN_GPT2:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
        )
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(split), behavior="isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
        )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer, spelled


def sentencepiece_tokenizer(metadata: dict) -> Any:
    """SentencePiece BPE: spaces become "▁" (one is put before the text), characters missing from the
    vocabulary fall back to their bytes (<0xE4>), and merges follow the tokens' scores."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tokens = metadata["tokenizer.ggml.tokens"]
    if "tokenizer.ggml.merges" in metadata:
        merges = [tuple(merge.split(" ", 1)) for merge in metadata["tokenizer.ggml.merges"]]
    else:
        merges = implied_merges(tokens, metadata.get("tokenizer.ggml.scores") or [0.0] * len(tokens))
    unknown = tokens[metadata.get("tokenizer.ggml.unknown_token_id", 0)]
    tokenizer = Tokenizer(
        models.BPE(
            vocab={token: index for index, token in enumerate(tokens)}, merges=merges, unk_token=unknown, fuse_unk=True, byte_fallback=True
        )
    )
    prefix_space = metadata.get("tokenizer.ggml.add_space_prefix", True)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first" if prefix_space else "never", split=False)
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    tokenizer.decoder = decoders.Sequence(steps + ([decoders.Strip(content=" ", left=1, right=0)] if prefix_space else []))
    return tokenizer


def implied_merges(tokens: list[str], scores: list[float]) -> list[tuple[str, str]]:
    """The merges a SentencePiece vocabulary implies (its files list none): every way to cut a token into
    two tokens is a merge making it, ranked by the made token's score, best first (as llama.cpp merges:
    the adjacent pair whose join scores highest); ties: the longer left part, then the longer right part."""
    index = {token: i for i, token in enumerate(tokens)}
    candidates = []
    for token, score in zip(tokens, scores):
        cuts = [(token[:k], token[k:]) for k in range(1, len(token)) if token[:k] in index and token[k:] in index]
        cuts.sort(key=lambda cut: (index[cut[0]], index[cut[1]]))
        candidates += [(score, left, right) for left, right in cuts]
    candidates.sort(key=lambda c: (c[0], len(c[1]), len(c[2])), reverse=True)  # stable: equal keys keep the order above
    return [(left, right) for _, left, right in candidates]


# ---- where the file is, and whether it fits ----


def split_parts(path: Path) -> tuple[Path, ...]:
    """The files of the model whose first (or only) file is `path`, judged from the name alone."""
    match = SPLIT_NAME.match(path.name)
    if match is None:
        return (path,)
    return tuple(path.with_name(f"{match['stem']}-{index:05d}-of-{match['count']}.gguf") for index in range(1, int(match["count"]) + 1))


def find_gguf(path: str | os.PathLike) -> Path:
    """The GGUF file `path` names: the file itself, or the one model in a directory (a split model: its
    first part). Several models in a directory: GGUFError naming them."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise GGUFError(f"no GGUF file or directory at '{path}'")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".gguf" and p.is_file() and not p.name.lower().startswith("mmproj"))
    models = [p for p in files if (match := SPLIT_NAME.match(p.name)) is None or int(match["index"]) == 1]
    if not models:
        raise GGUFError(f"'{path}' holds no .gguf model file")
    if len(models) > 1:
        names = ", ".join(p.name for p in models)
        raise GGUFError(f"'{path}' holds {len(models)} GGUF models ({names}); pass the one to load, as in --model {models[0]}")
    return models[0]


def available_memory() -> int | None:
    """Bytes a new allocation can take now: Linux's MemAvailable (capped by a cgroup limit), else the
    free physical pages; None where the system does not say."""
    available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max" and available is not None:
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return available


def memory_problem(name: str, needed: int, n_params: int, available: int | None) -> str | None:
    """Why a model whose float32 weights take `needed` bytes does not fit in `available`, in one sentence; None if it does."""
    if available is None or needed <= available:
        return None
    return (
        f"'{name}' needs about {needed / 1e9:.1f} GB of memory once dequantized to float32 "
        f"(4 bytes for each of its {n_params / 1e9:.2f} billion parameters), more than the {available / 1e9:.1f} GB available here"
    )


def check_memory(gguf: GGUFFile, available: int | None = None) -> None:
    """Raise GGUFMemoryError when the dequantized model would not fit (available: measured if None)."""
    available = available_memory() if available is None else available
    if problem := memory_problem(gguf.path.name, gguf.memory_needed, gguf.n_params, available):
        raise GGUFMemoryError(problem)
