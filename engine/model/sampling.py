"""Next-token distributions in NumPy: sampling (temperature -> top-k -> top-p -> softmax -> draw) and
the one definition of each quantity read off a distribution: entropy, KL divergence, the top N.

The order and the edge cases follow transformers' TemperatureLogitsWarper, TopKLogitsWarper and
TopPLogitsWarper (min_tokens_to_keep=1), so the same logits give the same distribution. The masking
decisions are made in float32 like torch's; the final probabilities are float64 so they sum to 1.

One choice transformers leaves to chance: when several tokens tie exactly at the top-p boundary, it
keeps whichever of them torch's unstable sort happens to put last. We keep the same number of them,
so the distribution is the same, and pick the lowest ids, as greedy does.
"""

from __future__ import annotations

import numpy as np

from engine.model.ops import softmax

KL_FLOOR = 1e-10  # q below this counts as this in KL(p‖q): a token q rules out costs p · log(p / 1e-10), not infinity


def raw_probs(logits):  # [..., V] -> [..., V] float64, softmax at temperature 1
    return softmax(np.asarray(logits, dtype=np.float64))


def greedy_probs(logits):  # [V] -> [V] one-hot at the argmax (ties go to the lowest id)
    probs = np.zeros(len(logits), dtype=np.float64)
    probs[int(np.argmax(logits))] = 1.0
    return probs


def top_k_mask(scores, top_k):  # [V], k -> [V] bool, True = removed
    """Remove every token scoring below the k-th best; tokens tied with it all stay."""
    k = min(max(top_k, 1), len(scores))
    kth_best = np.partition(scores, -k)[-k]
    return scores < kth_best


def top_p_mask(scores, top_p):  # [V], p -> [V] bool, True = removed
    """Remove the least likely tokens whose probabilities add up to at most 1 - p; keep at least one."""
    ascending = np.argsort(-scores, kind="stable")[::-1]  # [V] least likely first; among ties, highest id first
    cumulative = np.cumsum(softmax(scores[ascending]).astype(np.float64)).astype(np.float32)  # [V] torch sums in double
    remove_sorted = cumulative <= np.float32(1.0 - top_p)  # [V]
    remove_sorted[-1] = False  # min_tokens_to_keep = 1: the most likely token always stays
    removed = np.empty_like(remove_sorted)
    removed[ascending] = remove_sorted  # back to vocabulary order
    return removed


def warp_probs(logits, temperature: float, top_k: int = 0, top_p: float = 1.0):  # [V] -> [V] float64
    """The distribution the next token is drawn from. temperature 0 = greedy; top_k 0 and top_p 1 = off."""
    if temperature == 0:
        return greedy_probs(logits)
    scores = np.asarray(logits, dtype=np.float32) / np.float32(temperature)  # [V] temperature first
    if top_k > 0:
        scores = np.where(top_k_mask(scores, top_k), -np.inf, scores)  # then top-k
    if top_p < 1.0:
        scores = np.where(top_p_mask(scores, top_p), -np.inf, scores)  # then top-p, on what top-k left
    return raw_probs(scores)  # removed tokens get exactly 0


def sample(probs, rng: np.random.Generator) -> int:  # [V] -> token id
    """Draw one token id; the caller owns the generator, so runs repeat exactly with the same seed."""
    return int(rng.choice(len(probs), p=probs))


def entropy(p, axis=-1):  # [..., V] probabilities -> [...] nats
    """Shannon entropy in nats; zero-probability entries contribute nothing."""
    p = np.asarray(p, dtype=np.float64)
    logs = np.log(np.where(p > 0, p, 1.0))  # log 1 = 0 where p = 0
    return -(p * logs).sum(axis=axis)


def kl_divergence(p, q) -> float:  # [V], [V] probabilities -> KL(p‖q) in nats
    """KL(p‖q) = Σ p log(p / q). Terms with p = 0 are 0 (the limit of p log p); q is floored at KL_FLOOR
    where p > 0, so a token q rules out (greedy, top-k, top-p) costs p · log(p / 1e-10) ≈ p · 23 nats
    instead of infinity. Rounding can give -1e-16 for equal inputs; the result is clipped at 0."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"distributions must cover the same vocabulary (got {p.shape} and {q.shape})")
    support = p > 0  # [V]
    return max(0.0, float((p[support] * (np.log(p[support]) - np.log(np.maximum(q[support], KL_FLOOR)))).sum()))


def top_ids(p, n: int) -> np.ndarray:  # [V], n -> [min(n, V)] token ids
    """The n most likely ids, most likely first; ties go to the lower id."""
    n = min(n, p.shape[0])
    top = np.argpartition(-p, n - 1)[:n]
    return top[np.lexsort((top, -p[top]))]
