"""Models for tests and benchmarks, built here: random GPT-2s of known shapes (no hub, no download)."""

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
