"""Checkpoint dialects: how each family's config and tensor names map onto one Architecture and roles.

A family is plain data plus two small functions: its config (an HF config.json dict) -> Architecture,
and its tensor names -> parameters named by role, laid out [in, out] once at load:

    {"embed": [V, d], "pos_embed": [P, d] or None, "unembed": [d, V] (its own contiguous copy),
     "blocks": [{"norm1": {"g": [d], "b": [d] or None},
                 "attn": {"qkv": {"w": [d, (H + 2 H_kv) d_head], "b": [...] or None}, "o": {"w": [H d_head, d], "b": [d] or None}},
                 "norm2": {...},
                 "mlp": {"up": {"w": [d, d_ff], "b"}, "gate": {"w": [d, d_ff], "b"} or None, "down": {"w": [d_ff, d], "b"}}}, ...],
     "norm_f": {"g": [d], "b": [d] or None}}

    gpt2   GPT2LMHeadModel: transformer.h.{i}.attn.c_attn (Conv1D, already [in, out]) ...
    llama  LlamaForCausalLM, and the same names for mistral and qwen2 (qwen2 = llama + q/k/v biases):
           model.layers.{i}.self_attn.q_proj (nn.Linear, [out, in]) ...

`TORCH_PATHS` names the modules of transformers' models that the torch engine hooks. No per-family code
runs a block: engine.model.ops does, for every family.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.model.architecture import Architecture, Llama3Scaling

FAMILY_OF = {"gpt2": "gpt2", "llama": "llama", "mistral": "llama", "qwen2": "llama"}  # model_type -> family
GPT2_ACTIVATIONS = {"gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "gelu_fast": "gelu", "relu": "relu"}  # HF name -> Architecture.mlp
GPT2_VARIANTS = {  # GPT-2 config switches at the values engine.model.ops implements
    "scale_attn_weights": True,
    "scale_attn_by_inverse_layer_idx": False,
    "add_cross_attention": False,
}
SIZE_KEYS = {  # family -> config keys of (layers, query heads, d_model, context length): what a UI shows
    "gpt2": ("n_layer", "n_head", "n_embd", "n_positions"),
    "llama": ("num_hidden_layers", "num_attention_heads", "hidden_size", "max_position_embeddings"),
}
TORCH_PATHS = {  # family -> module paths in transformers' *ForCausalLM (relative to the model; "{i}" a layer)
    "gpt2": {
        "blocks": "transformer.h",
        "attn_o": "attn.c_proj",  # its input is the merged heads z [B, T, H * d_head]
        "mlp": "mlp",
        "mlp_down": "mlp.c_proj",  # its input is the MLP's hidden activations
        "norm_f": "transformer.ln_f",
        "unembed": "lm_head",
    },
    "llama": {
        "blocks": "model.layers",
        "attn_o": "self_attn.o_proj",
        "mlp": "mlp",
        "mlp_down": "mlp.down_proj",
        "norm_f": "model.norm",
        "unembed": "lm_head",
    },
}


def model_type_problem(config: dict, name: str = "the checkpoint") -> str | None:
    """Why tfund cannot step through this config's model at all (one sentence), or None."""
    model_type = config.get("model_type")
    if model_type not in FAMILY_OF:
        return (
            f"{name} holds a {model_type!r} model, which tfund does not run; it runs decoder-only language models "
            f"of model_type {', '.join(repr(t) for t in FAMILY_OF)}"
        )
    return None


def config_problem(config: dict, engine: str = "numpy", name: str = "the checkpoint") -> str | None:
    """Why `engine` does not run this config (an HF config dict), in one sentence; None if it does.

    "torch" (transformers' model with tfund's hooks) needs a family tfund knows; "numpy" also an
    architecture that engine.model.ops computes (no sliding window, no unknown rope scaling, ...).
    """
    if problem := model_type_problem(config, name):
        return problem
    if engine == "torch":
        return None
    try:
        architecture_from_config(config)
    except ValueError as error:
        return str(error)
    return None


def architecture_from_config(config: dict) -> Architecture:
    """An HF config dict -> Architecture. ValueError, in one sentence naming what is not run, otherwise."""
    if problem := model_type_problem(config):
        raise ValueError(problem)
    family = FAMILY_OF[config["model_type"]]
    return gpt2_architecture(config) if family == "gpt2" else llama_architecture(config)


def integer(config: dict, key: str, default=None) -> int:
    value = config.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"config has no integer {key}; not a checkpoint tfund can read")
    return value


def gpt2_architecture(config: dict) -> Architecture:
    activation = config.get("activation_function", "gelu_new")
    if activation not in GPT2_ACTIVATIONS:
        raise ValueError(f"activation_function {activation!r} is not one tfund computes; use one of {sorted(GPT2_ACTIVATIONS)}")
    for key, value in GPT2_VARIANTS.items():
        if config.get(key, value) != value:
            raise ValueError(f"GPT-2 variant with {key}={config[key]} is not one tfund computes")
    d_model, n_heads = integer(config, "n_embd"), integer(config, "n_head")
    if d_model % n_heads:
        raise ValueError(f"n_embd={d_model} is not divisible by n_head={n_heads}")
    return Architecture(
        family="gpt2",
        n_layers=integer(config, "n_layer"),
        n_heads=n_heads,
        n_kv_heads=n_heads,
        d_head=d_model // n_heads,
        d_model=d_model,
        d_ff=config.get("n_inner") or 4 * d_model,
        vocab_size=integer(config, "vocab_size"),
        n_positions=integer(config, "n_positions"),
        norm="layer",
        norm_eps=float(config.get("layer_norm_epsilon", 1e-5)),
        positions="learned",
        mlp=GPT2_ACTIVATIONS[activation],
        tied=config.get("tie_word_embeddings", True),
    )


def rope_settings(config: dict) -> tuple[float, Llama3Scaling | None]:
    """(theta, scaling) from either spelling transformers writes: rope_theta + rope_scaling (4.x) or
    rope_parameters (5.x). Only the default rotation and Llama 3's rescaling are computed."""

    def kind_of(parameters):
        return parameters.get("rope_type", parameters.get("type", "default"))

    spellings = [p for p in (config.get("rope_parameters"), config.get("rope_scaling")) if isinstance(p, dict)]
    parameters = next((p for p in spellings if kind_of(p) != "default"), spellings[0] if spellings else {})
    theta = float(next((p["rope_theta"] for p in spellings if "rope_theta" in p), config.get("rope_theta", 10_000.0)))
    kind = kind_of(parameters)
    if kind == "default":
        return theta, None
    if kind == "llama3":
        return theta, Llama3Scaling(
            factor=float(parameters["factor"]),
            low_freq_factor=float(parameters["low_freq_factor"]),
            high_freq_factor=float(parameters["high_freq_factor"]),
            original_context=int(parameters["original_max_position_embeddings"]),
        )
    raise ValueError(f"rope scaling {kind!r} is not one tfund computes (it computes the default rotation and 'llama3')")


def llama_architecture(config: dict) -> Architecture:
    model_type = config["model_type"]
    if config.get("hidden_act", "silu") != "silu":
        raise ValueError(f"hidden_act {config['hidden_act']!r} is not SwiGLU's silu; tfund computes the Llama MLP with silu only")
    layer_types = config.get("layer_types") or []
    sliding = config.get("use_sliding_window", model_type == "mistral") and config.get("sliding_window") is not None
    if sliding or "sliding_attention" in layer_types:
        raise ValueError(f"this {model_type} checkpoint uses sliding-window attention, which tfund does not compute")
    if config.get("partial_rotary_factor", 1.0) != 1.0:
        raise ValueError("partial rotary positions (partial_rotary_factor below 1) are not computed by tfund")
    d_model, n_heads = integer(config, "hidden_size"), integer(config, "num_attention_heads")
    if d_model % n_heads and config.get("head_dim") is None:
        raise ValueError(f"hidden_size={d_model} is not divisible by num_attention_heads={n_heads} and head_dim is not set")
    theta, scaling = rope_settings(config)
    attention_bias = bool(config.get("attention_bias", False))
    return Architecture(
        family="llama",
        n_layers=integer(config, "num_hidden_layers"),
        n_heads=n_heads,
        n_kv_heads=integer(config, "num_key_value_heads", n_heads) if config.get("num_key_value_heads") is not None else n_heads,
        d_head=config.get("head_dim") or d_model // n_heads,
        d_model=d_model,
        d_ff=integer(config, "intermediate_size"),
        vocab_size=integer(config, "vocab_size"),
        n_positions=integer(config, "max_position_embeddings"),
        norm="rms",
        norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        positions="rope",
        rope_theta=theta,
        rope_scaling=scaling,
        mlp="swiglu",
        qkv_bias=attention_bias or model_type == "qwen2",
        o_bias=attention_bias,
        mlp_bias=bool(config.get("mlp_bias", False)),
        norm_bias=False,
        tied=bool(config.get("tie_word_embeddings", False)),  # transformers' default for all three
    )


# ---- tensor names -> roles -----------------------------------------------------------------------


def transposed(w):  # [out, in] -> [in, out], its own contiguous copy (a torch tensor stays a view)
    return np.ascontiguousarray(w.T) if isinstance(w, np.ndarray) else w.T


def gpt2_roles(get: Callable, arch: Architecture) -> dict:
    """GPT-2's names; its Conv1D weights are already [in, out]."""

    def dense(prefix):
        return {"w": get(f"{prefix}.weight"), "b": get(f"{prefix}.bias")}

    def norm(prefix):
        return {"g": get(f"{prefix}.weight"), "b": get(f"{prefix}.bias")}

    blocks = [
        {
            "norm1": norm(f"h.{i}.ln_1"),
            "attn": {"qkv": dense(f"h.{i}.attn.c_attn"), "o": dense(f"h.{i}.attn.c_proj")},
            "norm2": norm(f"h.{i}.ln_2"),
            "mlp": {"up": dense(f"h.{i}.mlp.c_fc"), "gate": None, "down": dense(f"h.{i}.mlp.c_proj")},
        }
        for i in range(arch.n_layers)
    ]
    unembed = transposed(get("wte.weight" if arch.tied else "lm_head.weight"))  # [d, V]
    return {"embed": get("wte.weight"), "pos_embed": get("wpe.weight"), "unembed": unembed, "blocks": blocks, "norm_f": norm("ln_f")}


def llama_roles(get: Callable, arch: Architecture) -> dict:
    """Llama's names (also Mistral's and Qwen2's); nn.Linear weights are [out, in], transposed here.
    q, k and v are concatenated into one [d, (H + 2 H_kv) d_head] matrix: one matmul per block."""

    def bias(name, present):
        return get(name) if present else None

    def dense(prefix, has_bias):
        return {"w": transposed(get(f"{prefix}.weight")), "b": bias(f"{prefix}.bias", has_bias)}

    def qkv(prefix):
        parts = [f"{prefix}.{name}_proj" for name in "qkv"]
        w = np.concatenate([get(f"{p}.weight").T for p in parts], axis=1)  # [d, (H + 2 H_kv) d_head]
        b = np.concatenate([get(f"{p}.bias") for p in parts]) if arch.qkv_bias else None
        return {"w": w, "b": b}

    blocks = [
        {
            "norm1": {"g": get(f"layers.{i}.input_layernorm.weight"), "b": None},
            "attn": {"qkv": qkv(f"layers.{i}.self_attn"), "o": dense(f"layers.{i}.self_attn.o_proj", arch.o_bias)},
            "norm2": {"g": get(f"layers.{i}.post_attention_layernorm.weight"), "b": None},
            "mlp": {
                "up": dense(f"layers.{i}.mlp.up_proj", arch.mlp_bias),
                "gate": dense(f"layers.{i}.mlp.gate_proj", arch.mlp_bias),
                "down": dense(f"layers.{i}.mlp.down_proj", arch.mlp_bias),
            },
        }
        for i in range(arch.n_layers)
    ]
    unembed = transposed(get("embed_tokens.weight" if arch.tied else "lm_head.weight"))  # [d, V]
    return {
        "embed": get("embed_tokens.weight"),
        "pos_embed": None,
        "unembed": unembed,
        "blocks": blocks,
        "norm_f": {"g": get("norm.weight"), "b": None},
    }


ROLES = {"gpt2": gpt2_roles, "llama": llama_roles}
PREFIXES = {"gpt2": "transformer.", "llama": "model."}  # what the *ForCausalLM wrapper adds before the base model's names


def params_from_state(arch: Architecture, state: dict) -> dict:
    """Checkpoint-named float arrays (HF names, the base model's prefix optional) -> role-named float32
    params, every matrix [in, out] and C-contiguous. ValueError naming a missing tensor."""
    prefix = PREFIXES[arch.family]
    names = {key.removeprefix(prefix): key for key in state}

    def get(name):  # -> contiguous float32 array
        if name not in names:
            raise ValueError(f"checkpoint has no tensor {name!r}; not a {arch.family} checkpoint of this config")
        return np.ascontiguousarray(state[names[name]], dtype=np.float32)

    return ROLES[arch.family](get, arch)
