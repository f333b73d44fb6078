"""GPT-2 in NumPy: the from-scratch block (engine.model.ops) loaded with real checkpoint weights, plus a KV cache.

Params are nested dicts named like the checkpoint (picoGPT style):

    {"wte": [V, d], "wpe": [n_positions, d],
     "blocks": [{"ln_1": {"g", "b"}, "attn": {"c_attn": {"w", "b"}, "c_proj": {"w", "b"}},
                 "ln_2": {"g", "b"}, "mlp": {"c_fc": {"w", "b"}, "c_proj": {"w", "b"}}}, ...],
     "ln_f": {"g", "b"}}

Everything is float32. `forward` appends new tokens after what the cache holds, so decoding one
token costs one row of work per layer plus attention over the cached keys: linear in the context.
This module also says which configs are GPT-2s tfund runs (`config_problem`) and maps checkpoint
names to the nested params (`gpt2_params`), for the NumPy engine and the torch decode path alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.model.ops import layer_norm, stack

ACTIVATIONS = {"gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "gelu_fast": "gelu", "relu": "relu"}  # HF name -> ops.ACTIVATIONS
VARIANTS = {  # GPT-2 config switches at the values engine.model.ops implements
    "scale_attn_weights": True,
    "scale_attn_by_inverse_layer_idx": False,
    "add_cross_attention": False,
    "tie_word_embeddings": True,
}
ENGINE_VARIANTS = {  # which of VARIANTS each engine needs; "transformers" runs any GPT-2
    "transformers": (),
    "torch": ("add_cross_attention",),  # the static-cache decode path scales per layer and keeps lm_head
    "numpy": tuple(VARIANTS),
}


def config_problem(config: dict, engine: str = "numpy", name: str = "the checkpoint") -> str | None:
    """Why `config` (an HF config dict) is not a GPT-2 that `engine` runs, in one sentence; None if it is.

    "transformers" needs model_type 'gpt2'; "torch" (the static-cache decode path) also a supported
    activation and no cross-attention; "numpy" also integer sizes and GPT-2's standard variant.
    """
    model_type = config.get("model_type")
    if model_type != "gpt2":
        return f"{name} holds a {model_type!r} model, not a GPT-2 checkpoint; tfund steps through GPT-2-architecture models (model_type 'gpt2')"
    if engine == "transformers":
        return None
    activation = config.get("activation_function", "gelu_new")
    if activation not in ACTIVATIONS:
        return f"activation_function {activation!r} is not supported by the {engine} engine; use one of {sorted(ACTIVATIONS)}"
    for key in ENGINE_VARIANTS[engine]:
        if config.get(key, VARIANTS[key]) != VARIANTS[key]:
            return f"GPT-2 variant with {key}={config[key]} is not supported by the {engine} engine"
    for key in ("n_layer", "n_head", "n_positions"):
        if not isinstance(config.get(key), int):
            return f"config has no integer {key}; not a GPT-2 checkpoint"
    return None


def check_config(config: dict) -> None:
    """Raise ValueError, in one sentence, unless the NumPy engine runs this config."""
    if problem := config_problem(config, "numpy"):
        raise ValueError(problem)


def gpt2_params(get, n_layer: int) -> dict:
    """Checkpoint names -> nested params; get("h.0.attn.c_attn.weight") returns that tensor (array or torch)."""

    def norm(prefix):  # LayerNorm gain and bias
        return {"g": get(f"{prefix}.weight"), "b": get(f"{prefix}.bias")}

    def dense(prefix):  # Conv1D: weight is already [in, out]
        return {"w": get(f"{prefix}.weight"), "b": get(f"{prefix}.bias")}

    blocks = [
        {
            "ln_1": norm(f"h.{i}.ln_1"),
            "attn": {"c_attn": dense(f"h.{i}.attn.c_attn"), "c_proj": dense(f"h.{i}.attn.c_proj")},
            "ln_2": norm(f"h.{i}.ln_2"),
            "mlp": {"c_fc": dense(f"h.{i}.mlp.c_fc"), "c_proj": dense(f"h.{i}.mlp.c_proj")},
        }
        for i in range(n_layer)
    ]
    return {"wte": get("wte.weight"), "wpe": get("wpe.weight"), "blocks": blocks, "ln_f": norm("ln_f")}


def params_from_state_dict(state: dict[str, np.ndarray], n_layer: int) -> dict:
    """Checkpoint-named arrays (`transformer.h.0.attn.c_attn.weight`, prefix optional) -> float32 params."""
    state = {key.removeprefix("transformer."): value for key, value in state.items()}

    def get(name):  # -> contiguous float32 array
        if name not in state:
            raise ValueError(f"checkpoint has no tensor {name!r}; not a GPT-2 checkpoint")
        return np.ascontiguousarray(state[name], dtype=np.float32)

    return gpt2_params(get, n_layer)


def bfloat16_to_float32(bits):  # [...] uint16 -> [...] float32, exactly
    """bfloat16 is the top half of a float32: shift its 16 bits up."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def load_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Read every tensor as float32 NumPy; bfloat16 (unknown to NumPy) is widened from its raw bits."""
    from safetensors import deserialize, safe_open

    with safe_open(str(path), framework="np") as f:
        if all(f.get_slice(key).get_dtype() != "BF16" for key in f.keys()):
            return {key: f.get_tensor(key).astype(np.float32) for key in f.keys()}
    raw_types = {"BF16": "<u2", "F16": "<f2", "F32": "<f4", "F64": "<f8"}
    tensors = {}
    for key, tensor in deserialize(Path(path).read_bytes()):
        array = np.frombuffer(tensor["data"], dtype=raw_types[tensor["dtype"]]).reshape(tensor["shape"])
        tensors[key] = bfloat16_to_float32(array) if tensor["dtype"] == "BF16" else array.astype(np.float32)
    return tensors


@dataclass
class LayerCache:
    """One layer's slice of the KV cache, as ops.mha uses it."""

    k: np.ndarray  # [H, max_len, d_head] a view of the layer's buffer
    v: np.ndarray  # [H, max_len, d_head]
    length: int  # positions filled before this forward

    def append(self, k, v):  # [H, T, d_head] x2 -> [H, length + T, d_head] x2, views (no copy)
        end = self.length + k.shape[1]
        self.k[:, self.length : end] = k  # the new keys and values join the cache
        self.v[:, self.length : end] = v
        return self.k[:, :end], self.v[:, :end]


@dataclass
class KVCache:
    """Keys and values of every position seen so far, preallocated up to the context size."""

    k: np.ndarray  # [n_layer, H, max_len, d_head] float32; k[i] is layer i's buffer
    v: np.ndarray  # [n_layer, H, max_len, d_head] float32
    length: int = 0  # positions filled; rows past it are stale and never read

    def __len__(self) -> int:
        return self.length

    def crop(self, n: int) -> None:
        """Roll back to the first n positions (undo): later rows are simply overwritten."""
        if not 0 <= n <= self.length:
            raise ValueError(f"crop length must be in [0, {self.length}] (got {n})")
        self.length = n

    def layers(self) -> list[LayerCache]:
        """Each layer's view, for one forward over new tokens."""
        return [LayerCache(k, v, self.length) for k, v in zip(self.k, self.v)]


class GPT2Numpy:
    """GPT-2 forward pass in NumPy with TransformerLens-named captures and a KV cache."""

    def __init__(self, params: dict, n_head: int, layer_norm_epsilon: float = 1e-5, activation: str = "gelu"):
        self.params = params
        self.n_layer = len(params["blocks"])
        self.n_head = n_head
        self.vocab_size, self.d_model = params["wte"].shape
        self.n_positions = params["wpe"].shape[0]
        self.layer_norm_epsilon = layer_norm_epsilon
        self.activation = activation
        if self.d_model % n_head:
            raise ValueError(f"n_embd={self.d_model} is not divisible by n_head={n_head}")
        # x @ wte.T with wte.T as its own contiguous [d, V] copy: the unembedding streams through it row by row
        self.unembedding = np.ascontiguousarray(params["wte"].T)  # [d, V]

    @classmethod
    def from_config_and_state(cls, config: dict, state: dict[str, np.ndarray]) -> GPT2Numpy:
        """Build from a config dict and checkpoint-named arrays."""
        check_config(config)
        params = params_from_state_dict(state, config["n_layer"])
        return cls(
            params,
            n_head=config["n_head"],
            layer_norm_epsilon=float(config.get("layer_norm_epsilon", 1e-5)),
            activation=ACTIVATIONS[config.get("activation_function", "gelu_new")],
        )

    @classmethod
    def from_dir(cls, path) -> GPT2Numpy:
        """Load a GPT2LMHeadModel directory (config.json + model.safetensors) without torch."""
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"model directory not found: {path}")
        for name in ("config.json", "model.safetensors"):
            if not (path / name).is_file():
                raise FileNotFoundError(f"{name} not found in {path}")
        config = json.loads((path / "config.json").read_text())
        check_config(config)  # before reading possibly gigabytes of weights
        return cls.from_config_and_state(config, load_safetensors(path / "model.safetensors"))

    @classmethod
    def from_hf(cls, model) -> GPT2Numpy:
        """Copy the weights of an in-memory transformers GPT2LMHeadModel (or GPT2Model)."""
        config = model.config.to_dict()
        check_config(config)  # before copying the weights
        # copies: the NumPy params must not change if the torch model is trained further
        state = {key: value.detach().cpu().float().numpy().copy() for key, value in model.state_dict().items()}
        return cls.from_config_and_state(config, state)

    def new_cache(self, max_len: int | None = None) -> KVCache:
        """An empty KV cache with room for max_len positions (default: the whole context)."""
        d_head = self.d_model // self.n_head
        shape = (self.n_layer, self.n_head, max_len or self.n_positions, d_head)
        return KVCache(np.zeros(shape, np.float32), np.zeros(shape, np.float32))

    def forward(
        self, ids, cache: KVCache | None = None, capture: bool = True, logits_to_keep: int = 0, hooks: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        """New tokens ids [T] after the cache contents -> logits [T, V] float32, captures.

        Without a cache the ids are a whole sequence from position 0. The cache is extended in place.
        logits_to_keep=n unembeds only the last n rows (as in transformers; 0 keeps all): a long
        prompt's prefill then skips most of the [T, d] @ [d, V] product.
        Captures (none with capture=False): ops.block's per layer (blocks.{i}.hook_resid_pre /
        hook_resid_post [T, d], blocks.{i}.attn.hook_pattern [H, T, start + T], ...) and
        ln_final.hook_normalized [T, d]. hooks ({"blocks.{i}.attn.hook_z": fn, ...}, see ops.stack)
        change or record activations on the way (engine.model.interventions builds them). ValueError for no ids, ids outside the
        vocabulary, or positions past n_positions.
        """
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)  # [T]
        start = 0 if cache is None else len(cache)
        end = start + len(ids)
        if len(ids) == 0:
            raise ValueError("forward needs at least one token id")
        if ids.min() < 0 or ids.max() >= self.vocab_size:
            raise ValueError(f"token ids must be in [0, {self.vocab_size - 1}]")
        if end > self.n_positions:
            raise ValueError(f"positions up to {end - 1} exceed the context size n_positions={self.n_positions}")
        cache = self.new_cache(max_len=end) if cache is None else cache
        if end > cache.k.shape[2]:
            raise ValueError(f"the KV cache holds {cache.k.shape[2]} positions; {end} needed")

        x = self.params["wte"][ids] + self.params["wpe"][start:end]  # [T, d] token + position embeddings
        x, captures = stack(
            x,
            self.params["blocks"],
            self.n_head,
            caches=cache.layers(),
            capture=capture,
            hooks=hooks,
            activation=self.activation,
            eps=self.layer_norm_epsilon,
        )  # [T, d]
        cache.length = end
        x = layer_norm(x, **self.params["ln_f"], eps=self.layer_norm_epsilon)  # [T, d]
        if capture:
            captures["ln_final.hook_normalized"] = x
        return x[-logits_to_keep:] @ self.unembedding, captures  # [T, d] @ [d, V] -> [T, V]

    def lens(self, resid: np.ndarray) -> np.ndarray:  # [n, d] -> [n, V]
        """Logit lens: the final LN and the unembedding applied to any residual-stream vectors."""
        normalized = layer_norm(np.asarray(resid, dtype=np.float32), **self.params["ln_f"], eps=self.layer_norm_epsilon)
        return normalized @ self.unembedding
