"""Per-head statistics of a context's attention, for "every head at a glance": pure functions over [L, H, T, T].

Each statistic is a mean over the query rows that have a choice to make: rows 1..T-1 (row 0 can
only attend to itself). With a one-token context, row 0 is all there is.

- entropy: -Σ_j a[i, j] log a[i, j] in nats (0 = one key takes all; log(i + 1) = uniform over the prefix).
- sink: a[i, 0], the weight on the first token (the "attention sink").
- previous token: a[i, i - 1].
- duplicate: Σ a[i, j] over earlier positions j < i holding the same token id as i; mean over the rows
  whose token occurred before (NaN when no token repeats).
- induction: Σ a[i, j + 1] over earlier positions j < i holding i's token id, i.e. attention to the
  token that followed an earlier occurrence of the current token (A B … A → B); mean over the rows
  whose token occurred before (NaN when no token repeats). A repeated random sequence shows it best.

The reference for all of them is uniform attention on the same context (`uniform_stats`): each row spread
evenly over its past. A head's entropy below the uniform one by Δ nats is, row for row on average, Δ nats of
KL divergence from uniform (KL(a‖u) = ln(i + 1) - H(a)); under NEAR_UNIFORM_NATS it reads "≈ uniform".
"""

from __future__ import annotations

import numpy as np

from engine.model.sampling import entropy

STATISTICS = ("entropy", "sink", "prev_token", "duplicate", "induction")
NEAR_UNIFORM_NATS = 0.1  # a head whose entropy is this close to uniform attention's is within noise of it


def query_rows(T: int) -> slice:  # the rows the statistics average over
    return slice(1, T) if T > 1 else slice(0, 1)


def attention_entropy(pattern):  # [L, H, T, T] -> [L, H] nats
    return entropy(pattern[..., query_rows(pattern.shape[-2]), :]).mean(axis=-1)  # [L, H, T'] -> [L, H]


def sink_score(pattern):  # [L, H, T, T] -> [L, H]
    return np.asarray(pattern, dtype=np.float64)[..., query_rows(pattern.shape[-2]), 0].mean(axis=-1)


def prev_token_score(pattern):  # [L, H, T, T] -> [L, H]
    T = pattern.shape[-1]
    if T == 1:
        return np.asarray(pattern, dtype=np.float64)[..., 0, 0]  # the only key is itself
    rows = np.arange(1, T)
    return np.asarray(pattern, dtype=np.float64)[..., rows, rows - 1].mean(axis=-1)


def duplicate_mask(ids):  # [T] -> [T, T] bool: key j < i holds query i's token id
    ids = np.asarray(ids).reshape(-1)
    same = ids[:, None] == ids[None, :]  # [T, T]
    return same & np.tri(len(ids), k=-1, dtype=bool)


def induction_mask(ids):  # [T] -> [T, T] bool: key j + 1 follows an earlier occurrence j < i of query i's token
    dup = duplicate_mask(ids)  # [T, T]
    mask = np.zeros_like(dup)
    mask[:, 1:] = dup[:, :-1]  # shift each marked key one position right: j -> j + 1 (still <= i)
    return mask


def masked_row_score(pattern, mask, rows):  # [L, H, T, T], [T, T] bool, [T] bool -> [L, H]
    """Mean over the chosen query rows of the attention weight that falls on the marked keys."""
    if not rows.any():
        return np.full(pattern.shape[:2], np.nan)
    weight = (np.asarray(pattern, dtype=np.float64) * mask).sum(axis=-1)  # [L, H, T]
    return weight[..., rows].mean(axis=-1)


def duplicate_score(pattern, ids):  # [L, H, T, T], [T] -> [L, H]
    mask = duplicate_mask(ids)
    return masked_row_score(pattern, mask, mask.any(axis=-1))


def induction_score(pattern, ids):  # [L, H, T, T], [T] -> [L, H]
    return masked_row_score(pattern, induction_mask(ids), duplicate_mask(ids).any(axis=-1))


def attention_matrix(rows):  # T x [L, H, i + 1] -> [L, H, T, T]
    """Per-token attention rows (token i's over keys 0..i) as full matrices, zeros above the diagonal."""
    T = len(rows)
    L, H = rows[0].shape[:2] if rows else (0, 0)
    matrix = np.zeros((L, H, T, T), dtype=np.float32)  # [L, H, T, T]
    for i, row in enumerate(rows):
        matrix[:, :, i, : i + 1] = row
    return matrix


def head_stats(pattern, ids) -> dict[str, np.ndarray]:  # [L, H, T, T], [T] -> {name: [L, H]}
    """Every statistic of STATISTICS for every layer and head."""
    pattern = np.asarray(pattern)
    if pattern.ndim != 4 or pattern.shape[-1] != pattern.shape[-2] or pattern.shape[-1] != len(ids):
        raise ValueError(f"head_stats needs attention [L, H, T, T] over the T={len(ids)} context tokens (got {pattern.shape})")
    return {
        "entropy": attention_entropy(pattern),
        "sink": sink_score(pattern),
        "prev_token": prev_token_score(pattern),
        "duplicate": duplicate_score(pattern, ids),
        "induction": induction_score(pattern, ids),
    }


def uniform_stats(ids) -> dict[str, float]:  # [T] -> {name: value}
    """Every statistic for uniform causal attention over this context: the baseline a head is read against."""
    T = len(ids)
    pattern = np.tri(T) / np.arange(1, T + 1)[:, None]  # [T, T] row i: 1/(i + 1) on positions 0..i
    return {name: float(values[0, 0]) for name, values in head_stats(pattern[None, None], ids).items()}


def near_uniform(entropy: float, uniform_entropy: float) -> bool:
    """Within NEAR_UNIFORM_NATS of uniform: the head's mean KL divergence from uniform attention is that small."""
    return uniform_entropy - entropy < NEAR_UNIFORM_NATS
