"""Tiny random models written to GGUF the way llama.cpp's converter writes them, for tests (no hub).

GPT-2, Llama (grouped-query attention, untied output; optionally Llama 3.1's RoPE scaling), SmolLM
(Llama, tied output) and Qwen2 (q/k/v biases, tied output), each with a byte-level BPE tokenizer trained
here on a few lines of seven scripts, in one of llama.cpp's pre-tokenizer dialects; and Llama 2 with a
SentencePiece BPE vocabulary (byte fallback, scores, no merges in the file). The GGUF side is written from llama.cpp's
conventions, independently of engine/formats/gguf.py (the reader the tests check): its own tensor
names, Q/K row permutation, GPT-2 transposes and Llama 3 rope_freqs.

    case = make_case("llama", tmp_path, file_type="Q8_0")   # case.model, case.tokenizer, case.path
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.formats.gguf import LLAMA3_SPLIT, QWEN2_SPLIT

# One text per kind a tokenizer must get right: English, code, digits, Russian, Chinese, Arabic, emoji.
SAMPLE_TEXTS = {
    "english": "The quick brown fox jumps over the lazy dog, and the dog doesn't mind at all.",
    "code": "def add(a, b):\n    return a + b  # sum\n\nfor i in range(10):\n    print(add(i, i ** 2))",
    "digits": "In 2026 the 3 boxes held 1234567 beads; 3.14159 rounds to 3.14, and 1,000,000 is a million.",
    "russian": "Привет, как дела? Москва — столица России, а Нева течёт через Санкт-Петербург.",
    "chinese": "我们今天去北京吃烤鸭，然后在长城上看日落。学习语言需要时间。",
    "arabic": "مرحبا بالعالم، كيف حالك اليوم؟ القاهرة مدينة كبيرة وجميلة.",
    "emoji": "Party time 🎉😀👍🏽 with ❤️ and 🇫🇷 flags!",
}
CORPUS = [text for text in SAMPLE_TEXTS.values() for _ in range(3)] + [
    "the cat sat on the mat; the dog sat on the log. 12 + 34 = 46, 100 - 1 = 99.",
    "class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y",
    "Кошка спит на диване. Собака лает во дворе. 北京是中国的首都。 الشمس مشرقة اليوم.",
]

# dialect -> (special tokens, their roles), as the models that use each one have them
DIALECTS = {
    "gpt-2": {"special": ["<|endoftext|>"], "bos": "<|endoftext|>", "eos": "<|endoftext|>", "add_bos": False},
    "smollm": {"special": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "bos": "<|im_start|>", "eos": "<|im_end|>", "add_bos": False},
    "llama-bpe": {
        "special": ["<|begin_of_text|>", "<|end_of_text|>"],
        "bos": "<|begin_of_text|>",
        "eos": "<|end_of_text|>",
        "add_bos": True,
    },
    "qwen2": {"special": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "bos": None, "eos": "<|endoftext|>", "add_bos": False},
    "sentencepiece": {"special": ["<unk>", "<s>", "</s>"], "bos": "<s>", "eos": "</s>", "add_bos": True},
}
BYTE_TOKENS = [f"<0x{byte:02X}>" for byte in range(256)]  # SentencePiece's byte fallback
FAMILY_DIALECT = {
    "gpt2": "gpt-2",
    "llama": "llama-bpe",
    "llama3": "llama-bpe",
    "smollm": "smollm",
    "qwen2": "qwen2",
    "llama2": "sentencepiece",
}
LLAMA3_ROPE_SCALING = {  # chosen so that several frequencies of a 16-wide head fall in the blended band
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 8.0,
    "original_max_position_embeddings": 1024,
}
FILE_TYPES = ("F32", "Q8_0", "Q4_1")


@dataclass
class GGUFCase:
    """A random transformers model, its source tokenizer, and the GGUF file written from them."""

    model: Any  # transformers PreTrainedModel, eval mode, eager attention
    tokenizer: Any  # tokenizers.Tokenizer the file's vocabulary came from
    path: Path
    dialect: str  # tokenizer.ggml.pre


def train_tokenizer(dialect: str, vocab_size: int = 420) -> Any:
    """A byte-level BPE trained on CORPUS with the dialect's pre-tokenizer and special tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    if dialect == "sentencepiece":
        return train_sentencepiece(vocab_size)
    spec = DIALECTS[dialect]
    tokenizer = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.pre_tokenizer = {
        "gpt-2": byte_level,
        "smollm": pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level]),
        "llama-bpe": pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        ),
        "qwen2": pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        ),
    }[dialect]
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=spec["special"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    if spec["add_bos"]:
        bos = spec["bos"]
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokenizer.token_to_id(bos))]
        )
    return tokenizer


def train_sentencepiece(vocab_size: int) -> Any:
    """A SentencePiece-style BPE (Llama 2's kind): "▁" for spaces, byte fallback for characters outside
    its 100-character alphabet, BOS added."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)  # learn within words
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(content=" ", left=1, right=0)]
    )
    special = DIALECTS["sentencepiece"]["special"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size + 256, special_tokens=special + BYTE_TOKENS, limit_alphabet=100, show_progress=False
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)  # encode as Llama 2 does
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    return tokenizer


def randomize(model: Any, seed: int) -> Any:
    """Every parameter drawn at random (norm weights around 1, the rest N(0, 0.15)): zero biases and unit
    norms would hide a tensor read into the wrong place, and HF's small init makes attention flat."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            is_norm = "norm" in name or ".ln_" in name or name.startswith("ln_")
            parameter.copy_(1 + 0.1 * noise if is_norm and name.endswith("weight") else 0.15 * noise)
    return model.eval()


def random_model(family: str, vocab_size: int, bos_id: int | None, eos_id: int, seed: int = 0) -> Any:
    """A tiny transformers model of `family` (gpt2, llama, llama3, smollm, qwen2), randomized."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    ids = dict(vocab_size=vocab_size, bos_token_id=bos_id, eos_token_id=eos_id, attn_implementation="eager")
    if family == "gpt2":
        return randomize(GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=1024, **ids)), seed)
    shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16)
    if family == "qwen2":
        config = Qwen2Config(**shape, max_position_embeddings=128, rope_theta=10000.0, tie_word_embeddings=True, **ids)
        return randomize(Qwen2ForCausalLM(config), seed)
    if family == "llama2":  # every query head has its own key/value head
        shape["num_key_value_heads"] = shape["num_attention_heads"]
    rope = {"rope_theta": 10000.0, "rope_scaling": dict(LLAMA3_ROPE_SCALING)} if family == "llama3" else {"rope_theta": 10000.0}
    tied = family == "smollm"  # SmolLM ties its output to the embedding; the other Llamas here do not
    config = LlamaConfig(**shape, max_position_embeddings=2048, rms_norm_eps=1e-5, tie_word_embeddings=tied, **rope, **ids)
    return randomize(LlamaForCausalLM(config), seed)


def make_case(family: str, directory: Path, file_type: str = "F32", seed: int = 0) -> GGUFCase:
    """Train the family's tokenizer, build a random model and write `directory/{family}-{file_type}.gguf`."""
    dialect = FAMILY_DIALECT[family]
    tokenizer = train_tokenizer(dialect)
    spec = DIALECTS[dialect]
    bos_id = tokenizer.token_to_id(spec["bos"]) if spec["bos"] else None
    model = random_model(family, tokenizer.get_vocab_size(), bos_id, tokenizer.token_to_id(spec["eos"]), seed)
    path = Path(directory) / f"{family}-{file_type}.gguf"
    write_gguf(model, tokenizer, path, dialect, file_type)
    return GGUFCase(model=model, tokenizer=tokenizer, path=path, dialect=dialect)


# ---- writing, as llama.cpp's convert_hf_to_gguf.py and llama-quantize do ----


def permute_rope_rows(weight: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's Q/K row order: in each head, rows i and i + half become neighbours."""
    return weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def gguf_tensors(model: Any) -> dict[str, np.ndarray]:
    """The model's weights under llama.cpp's names and layouts, float32."""
    config = model.config
    state = {name: value.detach().float().numpy() for name, value in model.state_dict().items()}
    tensors = {}
    if config.model_type == "gpt2":
        conv1d = {"attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output", "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}
        norms = {"ln_1": "attn_norm", "ln_2": "ffn_norm"}
        tensors["token_embd.weight"] = state["transformer.wte.weight"]
        tensors["position_embd.weight"] = state["transformer.wpe.weight"]
        tensors["output_norm.weight"] = state["transformer.ln_f.weight"]
        tensors["output_norm.bias"] = state["transformer.ln_f.bias"]
        tensors["output.weight"] = state["transformer.wte.weight"]  # the converter writes GPT-2's tied output as a copy
        for i in range(config.n_layer):
            for hf, gg in conv1d.items():
                tensors[f"blk.{i}.{gg}.weight"] = state[f"transformer.h.{i}.{hf}.weight"].T  # Conv1D [in, out] -> [out, in]
                tensors[f"blk.{i}.{gg}.bias"] = state[f"transformer.h.{i}.{hf}.bias"]
            for hf, gg in norms.items():
                tensors[f"blk.{i}.{gg}.weight"] = state[f"transformer.h.{i}.{hf}.weight"]
                tensors[f"blk.{i}.{gg}.bias"] = state[f"transformer.h.{i}.{hf}.bias"]
        return tensors
    permute = config.model_type == "llama"  # llama.cpp permutes Llama's Q and K, not Qwen2's
    layer_names = {
        "input_layernorm": "attn_norm",
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "post_attention_layernorm": "ffn_norm",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    tensors["token_embd.weight"] = state["model.embed_tokens.weight"]
    tensors["output_norm.weight"] = state["model.norm.weight"]
    if not config.tie_word_embeddings:
        tensors["output.weight"] = state["lm_head.weight"]
    for i in range(config.num_hidden_layers):
        for hf, gg in layer_names.items():
            for kind in ("weight", "bias"):
                value = state.get(f"model.layers.{i}.{hf}.{kind}")
                if value is None:
                    continue
                if permute and gg in ("attn_q", "attn_k"):
                    value = permute_rope_rows(value, config.num_attention_heads if gg == "attn_q" else config.num_key_value_heads)
                tensors[f"blk.{i}.{gg}.{kind}"] = value
    scaling = config.rope_parameters if config.rope_parameters.get("rope_type") == "llama3" else None
    if scaling:
        tensors["rope_freqs.weight"] = llama3_rope_freqs(scaling, config.rope_parameters["rope_theta"], config.head_dim)
    return tensors


def llama3_rope_freqs(scaling: dict, theta: float, head_dim: int) -> np.ndarray:
    """One divisor per RoPE frequency, computed frequency by frequency as llama.cpp's converter does."""
    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    original = scaling["original_max_position_embeddings"]
    divisors = []
    for i in range(0, head_dim, 2):
        wavelength = 2 * math.pi * theta ** (i / head_dim)
        if wavelength < original / high:
            divisors.append(1.0)
        elif wavelength > original / low:
            divisors.append(factor)
        else:
            smooth = (original / wavelength - low) / (high - low)
            divisors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(divisors, dtype=np.float32)


def tensor_type(name: str, array: np.ndarray, file_type: str) -> str:
    """The type llama-quantize gives a tensor: matrices take the file's type (the embedding Q8_0 in a Q4
    file, as SmolLM2's is); vectors, positions and rope_freqs stay F32."""
    if file_type == "F32" or array.ndim != 2 or name in ("position_embd.weight", "rope_freqs.weight"):
        return "F32"
    if file_type == "Q4_1" and name == "token_embd.weight":
        return "Q8_0"
    return file_type


def write_gguf(
    model: Any, tokenizer: Any, path: Path, dialect: str, file_type: str = "F32", extra: dict | None = None, **writer_options: Any
) -> Path:
    """Write `model` and `tokenizer` to `path` as a GGUF of `file_type` (F32, Q8_0, Q4_1), with `extra`
    metadata keys (str or float values), through write_minimal_gguf. `writer_options` go to gguf.GGUFWriter
    (split_max_tensors=... writes a split model)."""
    import gguf

    config = model.config
    arch = config.model_type
    file_types = {"F32": gguf.LlamaFileType.ALL_F32, "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "Q4_1": gguf.LlamaFileType.MOSTLY_Q4_1}
    metadata = {"general.name": f"tfund test {arch}", "general.file_type": int(file_types[file_type])}
    if arch == "gpt2":
        sizes = {
            "block_count": config.n_layer,
            "context_length": config.n_positions,
            "embedding_length": config.n_embd,
            "feed_forward_length": config.n_inner or 4 * config.n_embd,
            "attention.head_count": config.n_head,
            "attention.layer_norm_epsilon": float(config.layer_norm_epsilon),
        }
    else:
        sizes = {
            "block_count": config.num_hidden_layers,
            "context_length": config.max_position_embeddings,
            "embedding_length": config.hidden_size,
            "feed_forward_length": config.intermediate_size,
            "attention.head_count": config.num_attention_heads,
            "attention.head_count_kv": config.num_key_value_heads,
            "attention.key_length": config.head_dim,
            "attention.value_length": config.head_dim,
            "rope.dimension_count": config.head_dim,
            "rope.freq_base": float(config.rope_parameters["rope_theta"]),
            "attention.layer_norm_rms_epsilon": float(config.rms_norm_eps),
        }
    metadata |= {f"{arch}.{key}": value for key, value in sizes.items()}
    metadata |= {key: value if isinstance(value, str) else float(value) for key, value in (extra or {}).items()}
    metadata |= tokenizer_metadata(tokenizer, dialect)
    tensors = {}
    for name, array in gguf_tensors(model).items():
        kind = gguf.GGMLQuantizationType[tensor_type(name, array, file_type)]
        array = np.ascontiguousarray(array, dtype=np.float32)
        tensors[name] = array if kind == gguf.GGMLQuantizationType.F32 else (gguf.quants.quantize(array, kind), kind)
    return write_minimal_gguf(path, arch, tensors, metadata, **writer_options)


def tokenizer_metadata(tokenizer: Any, dialect: str) -> dict:
    """The vocabulary (byte-level spelling, id order), merges, token types and special ids, as llama.cpp keeps them."""
    import json

    spec = DIALECTS[dialect]
    model = json.loads(tokenizer.to_str())["model"]
    if dialect == "sentencepiece":
        return sentencepiece_metadata(tokenizer, model["vocab"])
    tokens = [token for token, _ in sorted(model["vocab"].items(), key=lambda item: item[1])]
    merges = [merge if isinstance(merge, str) else " ".join(merge) for merge in model["merges"]]
    special = set(spec["special"])
    metadata = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": dialect,
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [3 if token in special else 1 for token in tokens],  # 3: control, 1: normal
        "tokenizer.ggml.merges": merges,
    }
    if spec["bos"]:
        metadata["tokenizer.ggml.bos_token_id"] = tokenizer.token_to_id(spec["bos"])
    metadata["tokenizer.ggml.eos_token_id"] = tokenizer.token_to_id(spec["eos"])
    metadata["tokenizer.ggml.add_bos_token"] = spec["add_bos"]
    return metadata


def sentencepiece_metadata(tokenizer: Any, vocab: dict[str, int]) -> dict:
    """A SentencePiece vocabulary as llama.cpp keeps it: tokens, scores (a later merge scores lower), types, no merges."""
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    special = DIALECTS["sentencepiece"]["special"]
    types = [2 if token == "<unk>" else 3 if token in special else 6 if token in BYTE_TOKENS else 1 for token in tokens]
    return {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": [0.0 if kind != 1 else -float(index) for index, kind in enumerate(types)],
        "tokenizer.ggml.token_type": types,  # 2: unknown, 3: control, 6: byte, 1: normal
        "tokenizer.ggml.bos_token_id": tokenizer.token_to_id("<s>"),
        "tokenizer.ggml.eos_token_id": tokenizer.token_to_id("</s>"),
        "tokenizer.ggml.unknown_token_id": tokenizer.token_to_id("<unk>"),
        "tokenizer.ggml.add_bos_token": True,
        "tokenizer.ggml.add_space_prefix": True,
    }


# ---- files for the refusals: small, and wrong in one way each ----


def write_minimal_gguf(
    path: Path,
    arch: str = "llama",
    tensors: dict | None = None,
    metadata: dict | None = None,
    big_endian: bool = False,
    **writer_options: Any,
) -> Path:
    """The one GGUF writer of the tests (gguf.GGUFWriter, llama.cpp's own): `arch`, `metadata` keys (str,
    bool, int as uint32, float as float32, or a list: an array of its items' type) and `tensors` (name ->
    float32 array, or (raw bytes, gguf.GGMLQuantizationType)); by default one 4 x 32 embedding.
    `writer_options` go to gguf.GGUFWriter (split_max_tensors=... writes a split model)."""
    import gguf

    endian = gguf.GGUFEndian.BIG if big_endian else gguf.GGUFEndian.LITTLE
    writer = gguf.GGUFWriter(str(path), arch, endianess=endian, **writer_options)
    for key, value in (metadata or {}).items():
        if isinstance(value, str):
            writer.add_string(key, value)
        elif isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        else:
            writer.add_array(key, list(value))
    for name, value in (tensors or {"token_embd.weight": np.zeros((4, 32), np.float32)}).items():
        if isinstance(value, tuple):
            writer.add_tensor(name, value[0], raw_dtype=value[1])
        else:
            writer.add_tensor(name, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


TINY_TOKENS = ["<s>", "</s>", "a", "b", "ab", "Ġthe", "Ġcat", "ĠПривет", "你好", "🙂"]
TINY_MERGES = ["a b", "Ġ t", "Ġt he"]


def write_tiny_model_gguf(
    path: Path, arch: str = "llama", n_layer: int = 2, tensor_type: str = "F32", file_type: str | None = "F32", big_endian: bool = False
) -> int:
    """A header like a real model's (sizes, file type, a tokenizer's string arrays; no model to run) over a
    few small random tensors, 32 wide, written by write_minimal_gguf: for the model store's header scans.
    Matrices are `tensor_type` (norms stay F32, as llama.cpp writes them); `file_type` None leaves
    general.file_type out, as older writers did. Returns the number of parameters written."""
    import gguf

    metadata = {
        f"{arch}.block_count": n_layer,
        f"{arch}.context_length": 64,
        f"{arch}.embedding_length": 32,
        f"{arch}.feed_forward_length": 64,
        f"{arch}.attention.head_count": 4,
        f"{arch}.attention.head_count_kv": 2,
        f"{arch}.rope.freq_base": 10000.0,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.tokens": TINY_TOKENS,
        "tokenizer.ggml.token_type": [1] * len(TINY_TOKENS),
        "tokenizer.ggml.merges": TINY_MERGES,
        "tfund.test.floats": [0.5, 1.5, 2.5],
    }
    if file_type is not None:
        metadata["general.file_type"] = int(gguf.LlamaFileType[{"F32": "ALL_F32"}.get(file_type, f"MOSTLY_{file_type}")])
    shapes = {"token_embd.weight": (len(TINY_TOKENS), 32), "output_norm.weight": (32,)}
    for block in range(n_layer):
        shapes |= {f"blk.{block}.attn_q.weight": (32, 32), f"blk.{block}.attn_k.weight": (16, 32), f"blk.{block}.attn_norm.weight": (32,)}
    rng = np.random.default_rng(0)
    kind = gguf.GGMLQuantizationType[tensor_type]
    tensors = {}
    for name, shape in shapes.items():
        data = rng.standard_normal(shape).astype(np.float32)
        quantized = len(shape) == 2 and kind != gguf.GGMLQuantizationType.F32
        tensors[name] = (gguf.quants.quantize(data, kind), kind) if quantized else data
    write_minimal_gguf(path, arch, tensors, metadata, big_endian)
    return sum(math.prod(shape) for shape in shapes.values())


def set_first_tensor_type(path: Path, type_number: int) -> None:
    """Overwrite the type of the file's first tensor with `type_number` (e.g. one no gguf package knows)."""
    import gguf

    tensor = gguf.GGUFReader(path).tensors[0]
    offset = tensor.field.offset + sum(part.nbytes for part in tensor.field.parts[:4])  # after name length, name, n_dims, dims
    data = bytearray(Path(path).read_bytes())
    data[offset : offset + 4] = type_number.to_bytes(4, "little")
    Path(path).write_bytes(bytes(data))
