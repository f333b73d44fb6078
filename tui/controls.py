"""What one key press does to a setting: small pure functions, so keys stay predictable and testable."""

from __future__ import annotations

from dataclasses import replace

from engine.model.blocklab import D_FF_CHOICES, D_MODEL_CHOICES, N_HEADS_MAX, N_LAYERS_MAX, SEED_MAX, SEQ_LEN_MAX, BlockLabConfig

TEMPERATURE_STEP = 0.1  # t / T
TEMPERATURE_MAX = 5.0  # beyond this every candidate looks alike
TOP_P_STEP = 0.05  # p / P
TOP_P_MIN = 0.05  # top-p must stay above 0
TOP_K_LADDER = (0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)  # 0 = off
MAX_NEW_TOKENS_LADDER = (1, 8, 16, 32, 64, 128, 256, 512, 1024)
WEIGHT_SCALE_LADDER = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def clamp(value, low, high):
    return max(low, min(high, value))


def nudge_temperature(temperature: float, direction: int) -> float:
    """±0.1, floored at 0 (greedy)."""
    return round(clamp(temperature + direction * TEMPERATURE_STEP, 0.0, TEMPERATURE_MAX), 2)


def nudge_top_p(top_p: float, direction: int) -> float:
    return round(clamp(top_p + direction * TOP_P_STEP, TOP_P_MIN, 1.0), 2)


def ladder_step(value, ladder: tuple, direction: int):
    """The next rung above (direction 1) or below (-1) value; value itself may lie between rungs."""
    if direction > 0:
        return next((rung for rung in ladder if rung > value), ladder[-1] if value <= ladder[-1] else value)
    return next((rung for rung in reversed(ladder) if rung < value), ladder[0] if value >= ladder[0] else value)


def cycle(index: int, count: int, direction: int) -> int:
    return (index + direction) % count


def cycle_head(head: int | None, n_head: int, direction: int) -> int | None:
    """mean → 0 → 1 → … → n_head-1 → mean (None is the mean over heads)."""
    slots = [None, *range(n_head)]
    return slots[cycle(slots.index(head), len(slots), direction)]


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def head_options(cfg: BlockLabConfig) -> list[int]:
    """The head counts the lab's width allows: divisors of d_model up to the limit, leaving rotary positions a pair."""
    return [d for d in divisors(cfg.d_model) if d <= N_HEADS_MAX and (cfg.positions != "rope" or (cfg.d_model // d) % 2 == 0)]


def fit_heads(cfg: BlockLabConfig, n_heads: int) -> BlockLabConfig:
    """At most n_heads query heads the width allows; the key/value heads, if grouped, the most that still divide them."""
    n_heads = max(d for d in head_options(cfg) if d <= max(n_heads, 1))
    kv = cfg.n_kv_heads
    return replace(cfg, n_heads=n_heads, n_kv_heads=None if kv is None else max(d for d in divisors(n_heads) if d <= kv))


def nudge_lab(cfg: BlockLabConfig, field: str, direction: int) -> BlockLabConfig:
    """One key press on a block-lab dimension, kept within the lab's limits (BlockLabConfig.validate);
    n_heads (and grouped KV heads) follow d_model so they always divide it."""
    if field == "T":
        T = clamp(cfg.T + direction, 1, SEQ_LEN_MAX)
        return replace(cfg, T=T, changed_token=None if cfg.changed_token is None else min(cfg.changed_token, T - 1))
    if field == "n_layers":
        return replace(cfg, n_layers=clamp(cfg.n_layers + direction, 1, N_LAYERS_MAX))
    if field == "seed":
        return replace(cfg, seed=clamp(cfg.seed + direction, 0, SEED_MAX))
    if field == "d_ff":
        return replace(cfg, d_ff=ladder_step(cfg.d_ff, D_FF_CHOICES, direction))
    if field == "weight_scale":
        return replace(cfg, weight_scale=ladder_step(cfg.weight_scale, WEIGHT_SCALE_LADDER, direction))
    if field == "d_model":
        return fit_heads(replace(cfg, d_model=ladder_step(cfg.d_model, D_MODEL_CHOICES, direction)), cfg.n_heads)
    if field == "n_heads":
        options = head_options(cfg)
        at = options.index(cfg.n_heads)
        return fit_heads(cfg, options[clamp(at + direction, 0, len(options) - 1)])
    raise ValueError(f"unknown block-lab field {field!r}")


ACTIVATION_CYCLE = ("relu", "gelu", "swiglu")  # y: the notebook's, GPT-2's, Llama's
POSITIONS_CYCLE = ("none", "learned", "rope")  # U: the notebook's, GPT-2's, Llama's


def next_in(options: tuple, value) -> object:
    return options[(options.index(value) + 1) % len(options)]


def toggle_lab(cfg: BlockLabConfig, switch: str) -> BlockLabConfig:
    """Flip residual / layer_norm / pre_ln / causal / attention; cycle the activation (ReLU → GELU → SwiGLU), the
    positions (none → learned → RoPE), the norm kind (LayerNorm ↔ RMSNorm) or the key/value heads (all → half →
    … → 1 → all: grouped-query attention); or flip the middle row of X (changed_token) or restore it."""
    if switch == "activation":
        return replace(cfg, activation=next_in(ACTIVATION_CYCLE, cfg.activation))
    if switch == "positions":
        return fit_heads(replace(cfg, positions=next_in(POSITIONS_CYCLE, cfg.positions)), cfg.n_heads)  # RoPE needs pairs
    if switch == "norm_kind":
        return replace(cfg, norm_kind="rms" if cfg.norm_kind == "layer" else "layer")
    if switch == "n_kv_heads":
        fewer = [d for d in divisors(cfg.n_heads) if d < cfg.kv_heads]
        return replace(cfg, n_kv_heads=max(fewer) if fewer else None)
    if switch == "changed_token":  # the middle row of X, or none
        return replace(cfg, changed_token=cfg.T // 2 if cfg.changed_token is None else None)
    return replace(cfg, **{switch: not getattr(cfg, switch)})


def nudge_setting(name: str, value, direction: int):
    """One key press on a sampling setting of the main screen: temperature, top_k, top_p, max_new_tokens or seed."""
    if name == "temperature":
        return nudge_temperature(value, direction)
    if name == "top_k":
        return ladder_step(value, TOP_K_LADDER, direction)
    if name == "top_p":
        return nudge_top_p(value, direction)
    if name == "max_new_tokens":
        return ladder_step(value, MAX_NEW_TOKENS_LADDER, direction)
    if name == "seed":
        return max(0, value + direction)
    raise ValueError(f"unknown sampling setting {name!r}")
