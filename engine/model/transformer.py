"""A decoder-only language model in NumPy: the from-scratch block (engine.model.ops) run by an
Architecture (engine.model.architecture) on role-named weights (engine.model.families), plus a KV cache.

One class serves GPT-2 and the Llama family (Llama, Mistral-style, Qwen2):

    net = NumpyLM.from_dir("path/to/model")               # config.json + model.safetensors, no torch
    net = NumpyLM.from_config_and_state(config, state)    # an HF config dict + HF-named float arrays
    logits, captures = net.forward(ids, cache=net.new_cache())

Everything is float32. `forward` appends new tokens after what the cache holds, so decoding one token
costs one row of work per layer plus attention over the cached keys: linear in the context. The cache
holds H_kv heads per layer (grouped-query attention shares them; they are never copied per query head).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.model.architecture import Architecture
from engine.model.families import architecture_from_config, params_from_state
from engine.model.ops import NORMS, rotary_angles, stack


def last_resid(captures: dict, n_layer: int) -> np.ndarray:  # -> [L + 1, d]
    """The residual stream at the last position, from NumpyLM.forward's captures: the embedding, then after each block."""
    return np.stack([captures["blocks.0.hook_resid_pre"][-1]] + [captures[f"blocks.{i}.hook_resid_post"][-1] for i in range(n_layer)])


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

    k: np.ndarray  # [H_kv, max_len, d_head] a view of the layer's buffer
    v: np.ndarray  # [H_kv, max_len, d_head]
    length: int  # positions filled before this forward

    def append(self, k, v):  # [H_kv, T, d_head] x2 -> [H_kv, length + T, d_head] x2, views (no copy)
        end = self.length + k.shape[1]
        self.k[:, self.length : end] = k  # the new keys and values join the cache
        self.v[:, self.length : end] = v
        return self.k[:, :end], self.v[:, :end]


@dataclass
class KVCache:
    """Keys and values of every position seen so far, preallocated up to max_len positions."""

    k: np.ndarray  # [n_layer, H_kv, max_len, d_head] float32; k[i] is layer i's buffer
    v: np.ndarray  # [n_layer, H_kv, max_len, d_head] float32
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


class NumpyLM:
    """A decoder-only LM's forward pass in NumPy with TransformerLens-named captures and a KV cache."""

    def __init__(self, arch: Architecture, params: dict):
        self.arch = arch
        self.params = params
        self.n_layer, self.n_head, self.n_kv_heads = arch.n_layers, arch.n_heads, arch.n_kv_heads
        self.d_model, self.vocab_size, self.n_positions = arch.d_model, arch.vocab_size, arch.n_positions
        self.unembedding = params["unembed"]  # [d, V] its own contiguous copy: the unembedding streams through it row by row
        self.inv_freq = arch.inverse_frequencies() if arch.positions == "rope" else None  # [d_head / 2]
        self.switches = dict(n_kv_heads=arch.n_kv_heads, norm=arch.norm, activation=arch.mlp, eps=arch.norm_eps)

    @property
    def n_params(self) -> int:
        """Numbers in the weights, as transformers counts them (a tied unembedding is the embedding, counted once)."""

        def count(tree):  # nested dicts and lists of arrays; a missing bias or gate is None
            if isinstance(tree, dict):
                return sum(count(value) for value in tree.values())
            if isinstance(tree, list):
                return sum(count(value) for value in tree)
            return 0 if tree is None else tree.size

        return count(self.params) - (self.unembedding.size if self.arch.tied else 0)

    @classmethod
    def from_config_and_state(cls, config: dict, state: dict[str, np.ndarray]) -> NumpyLM:
        """Build from an HF config dict (as in config.json) and HF-checkpoint-named float arrays
        (`model.layers.0.self_attn.q_proj.weight`, `transformer.h.0.attn.c_attn.weight`, ...).
        ValueError, in one sentence, for a config tfund does not compute or a missing tensor."""
        arch = architecture_from_config(config)
        return cls(arch, params_from_state(arch, state))

    @classmethod
    def from_dir(cls, path) -> NumpyLM:
        """Load a transformers model directory (config.json + model.safetensors) without torch."""
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"model directory not found: {path}")
        for name in ("config.json", "model.safetensors"):
            if not (path / name).is_file():
                raise FileNotFoundError(f"{name} not found in {path}")
        config = json.loads((path / "config.json").read_text())
        architecture_from_config(config)  # refuse before reading possibly gigabytes of weights
        return cls.from_config_and_state(config, load_safetensors(path / "model.safetensors"))

    @classmethod
    def from_hf(cls, model) -> NumpyLM:
        """Copy the weights of an in-memory transformers *ForCausalLM."""
        config = model.config.to_dict()
        architecture_from_config(config)  # before copying the weights
        # copies: the NumPy params must not change if the torch model is trained further
        state = {key: value.detach().cpu().float().numpy().copy() for key, value in model.state_dict().items()}
        return cls.from_config_and_state(config, state)

    def new_cache(self, max_len: int | None = None) -> KVCache:
        """An empty KV cache with room for max_len positions (default: the whole context), H_kv heads per layer."""
        shape = (self.n_layer, self.n_kv_heads, max_len or self.n_positions, self.arch.d_head)
        return KVCache(np.zeros(shape, np.float32), np.zeros(shape, np.float32))

    def normalize_final(self, x):  # [..., d] -> [..., d] the final norm (norm_f)
        return NORMS[self.arch.norm](np.asarray(x, dtype=np.float32), **self.params["norm_f"], eps=self.arch.norm_eps)

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
        vocabulary, or positions past the context size.
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

        x = self.params["embed"][ids]  # [T, d] token embeddings
        if self.params["pos_embed"] is not None:
            x = x + self.params["pos_embed"][start:end]  # [T, d] + learned position embeddings
        angles = None if self.inv_freq is None else rotary_angles(self.inv_freq, start, end)  # [T, d_head / 2] x2
        x, captures = stack(
            x, self.params["blocks"], self.n_head, caches=cache.layers(), capture=capture, hooks=hooks, rope_angles=angles, **self.switches
        )  # [T, d]
        cache.length = end
        x = self.normalize_final(x)  # [T, d]
        if capture:
            captures["ln_final.hook_normalized"] = x
        return x[-logits_to_keep:] @ self.unembedding, captures  # [T, d] @ [d, V] -> [T, V]

    def forward_from(self, resid, first: int, hooks: dict | None = None) -> tuple[np.ndarray, np.ndarray]:  # [T, d] -> [V], [L - first, d]
        """The next token's logits from a whole context's residual stream entering block `first` (positions
        0..T-1, no cache): blocks `first`.. , the final norm, the unembedding of the last position; and the
        residual stream at the last position after each of those blocks. hooks are named by layer as in
        forward ({"blocks.{i}.attn.hook_z": fn}); those below `first` do not run."""
        angles = None if self.inv_freq is None else rotary_angles(self.inv_freq, 0, len(resid))  # [T, d_head / 2] x2
        x, after = resid, []
        for layer in range(first, self.n_layer):  # one block at a time, keeping its last position
            prefix = f"blocks.{layer}."
            block_hooks = {f"blocks.0.{name.removeprefix(prefix)}": fn for name, fn in (hooks or {}).items() if name.startswith(prefix)}
            blocks = self.params["blocks"][layer : layer + 1]
            x, _ = stack(x, blocks, self.n_head, capture=False, hooks=block_hooks, rope_angles=angles, **self.switches)
            after.append(x[-1])  # [d]
        return self.normalize_final(x[-1]) @ self.unembedding, np.stack(after)  # [d] @ [d, V] -> [V]; [L - first, d]

    def lens(self, resid: np.ndarray) -> np.ndarray:  # [n, d] -> [n, V]
        """Logit lens: the final norm and the unembedding applied to any residual-stream vectors."""
        return self.normalize_final(resid) @ self.unembedding
