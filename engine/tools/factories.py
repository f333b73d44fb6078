"""Models for tests and benchmarks, built here: random GPT-2s and Llama-family models of known shapes
(no hub, no download)."""

from __future__ import annotations

# name -> (n_layer, n_head, n_embd, vocab_size, n_positions)
SHAPES = {
    "tiny": (2, 4, 64, 256, 64),  # for tests: builds in milliseconds
    "gpt2": (12, 12, 768, 50257, 1024),  # GPT-2 small, 124M
    "gpt2-medium": (24, 16, 1024, 50257, 1024),  # 355M
    "gpt2-large": (36, 20, 1280, 50257, 1024),  # 774M
    "gpt2-xl": (48, 25, 1600, 50257, 1024),  # 1.5B
}


def random_gpt2(config_name: str = "gpt2", seed: int = 0, **overrides):
    """A random-init GPT2LMHeadModel of a known shape (no hub), fp32, eager attention, eval mode.

    `overrides` go to GPT2Config (e.g. n_positions=32). The seed is applied inside a forked torch RNG,
    so the caller's global torch random state is left as it was.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    if config_name not in SHAPES:
        raise ValueError(f"config name must be one of {sorted(SHAPES)} (got {config_name!r})")
    n_layer, n_head, n_embd, vocab_size, n_positions = SHAPES[config_name]
    settings = dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=vocab_size, n_positions=n_positions)
    settings.update(overrides)
    last_id = settings["vocab_size"] - 1  # GPT-2's end-of-text is its last id
    config = GPT2Config(bos_token_id=last_id, eos_token_id=last_id, attn_implementation="eager", **settings)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    return model.eval()


# name -> (n_layer, n_head, n_kv_heads, hidden_size, intermediate_size, vocab_size, max_position_embeddings)
LLAMA_SHAPES = {
    "tiny": (2, 4, 2, 64, 96, 256, 128),  # for tests: grouped-query attention, 4 query heads share 2 KV heads
    "smollm2": (30, 9, 3, 576, 1536, 49152, 2048),  # SmolLM2-135M's shape (its own context is 8,192)
}
LLAMA_FAMILY = ("llama", "mistral", "qwen2")  # model types built by random_llama


def random_llama(config_name: str = "tiny", seed: int = 0, model_type: str = "llama", tied: bool = False, **overrides):
    """A random-init Llama-family *ForCausalLM of a known shape (no hub), fp32, eager attention, eval mode.

    model_type "qwen2" has q/k/v biases; "mistral" is built without a sliding window. Every norm gain
    and bias is drawn too (transformers starts them at 1 and 0, which would hide a misplaced one), and
    the weights are drawn with std 0.1 so that the logits spread. `overrides` go to the config
    (e.g. rope_scaling, head_dim). The seed is applied inside a forked torch RNG.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if config_name not in LLAMA_SHAPES:
        raise ValueError(f"config name must be one of {sorted(LLAMA_SHAPES)} (got {config_name!r})")
    if model_type not in LLAMA_FAMILY:
        raise ValueError(f"model_type must be one of {', '.join(LLAMA_FAMILY)} (got {model_type!r})")
    n_layer, n_head, n_kv, d, d_ff, vocab_size, n_positions = LLAMA_SHAPES[config_name]
    settings = dict(
        num_hidden_layers=n_layer,
        num_attention_heads=n_head,
        num_key_value_heads=n_kv,
        hidden_size=d,
        intermediate_size=d_ff,
        vocab_size=vocab_size,
        max_position_embeddings=n_positions,
        rope_theta=100_000.0,
        tie_word_embeddings=tied,
        bos_token_id=1,
        eos_token_id=2,
        initializer_range=0.1,
        attn_implementation="eager",
    )
    if model_type == "mistral":
        settings["sliding_window"] = None
    settings.update(overrides)
    config = AutoConfig.for_model(model_type, **settings)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if name.endswith("norm.weight") or "layernorm" in name:
                    parameter.copy_(1.0 + 0.1 * torch.randn_like(parameter))
                elif name.endswith(".bias"):
                    parameter.copy_(0.1 * torch.randn_like(parameter))
    return model.eval()
