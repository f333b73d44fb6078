"""Representations in 2-D and where each token was decided (engine.views.representations), checked against
computations the tests make themselves: residuals captured from transformers' GPT-2 with forward hooks, a PCA
through NumPy's SVD, and a logit lens through transformers' ln_f and lm_head."""

import numpy as np
import pytest
import torch

from engine.events import SamplingConfig
from engine.runtime.sampler import Sampler
from engine.views.representations import (
    OUTLIER_RATIO,
    context_residuals,
    decided_block,
    decided_blocks,
    layer_names,
    outlier_positions,
    projection,
)

PROMPT = "In a small village, there lived a little girl named Lily. She loved to play"  # 17 toy tokens


@torch.inference_mode()
def torch_residuals(hf_model, ids: list[int]) -> np.ndarray:  # -> [L + 1, T, d]
    """The embeddings and every block's output, captured by hooks on transformers' own modules."""
    captured = []

    def keep(module, args, out):  # a block returns its hidden states [1, T, d] (in a tuple in older transformers)
        captured.append((out if isinstance(out, torch.Tensor) else out[0])[0])

    hooks = [block.register_forward_hook(keep) for block in hf_model.transformer.h]
    try:
        out = hf_model(torch.tensor([ids]), output_hidden_states=True)
    finally:
        for hook in hooks:
            hook.remove()
    return torch.stack([out.hidden_states[0][0], *captured]).float().numpy()


def svd_pca(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # [N, d] -> [N, 2], [2]
    centred = vectors - vectors.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    return u[:, :2] * s[:2], s[:2] ** 2 / (s**2).sum()


def assert_same_up_to_axis_signs(a: np.ndarray, b: np.ndarray, atol: float) -> None:  # [N, 2] each
    for axis in range(2):
        sign = np.sign(a[:, axis] @ b[:, axis])
        np.testing.assert_allclose(a[:, axis], sign * b[:, axis], atol=atol)


@pytest.fixture(scope="module")
def toy_ids(toy):
    return toy.tokenizer.encode(PROMPT, add_special_tokens=False)


def test_residuals_are_the_stream_before_the_final_norm_as_transformers_computes_it(toy, toy_ids):
    ours = context_residuals(toy.numpy_model(), toy_ids)
    theirs = torch_residuals(toy.hf_model, toy_ids)
    assert ours.shape == theirs.shape == (toy.info.n_layer + 1, len(toy_ids), toy.info.d_model)
    np.testing.assert_allclose(ours, theirs, atol=2e-4)


def test_one_pca_over_every_layer_equals_numpy_svd_of_residuals_captured_here(toy, toy_ids):
    shown = projection(context_residuals(toy.numpy_model(), toy_ids))
    resid = torch_residuals(toy.hf_model, toy_ids).astype(np.float64)  # [L + 1, T, d]
    expected, ratio = svd_pca(resid.reshape(-1, resid.shape[-1]))  # every layer's vectors together, centred once
    assert shown.positions == list(range(len(toy_ids))) and shown.excluded == []
    assert_same_up_to_axis_signs(shown.coords.reshape(-1, 2), expected, atol=2e-3)
    np.testing.assert_allclose(shown.explained_variance_ratio, ratio, atol=1e-5)
    assert 0 < shown.explained_variance_ratio[1] <= shown.explained_variance_ratio[0] < 1


def test_a_layer_by_layer_pca_would_differ_one_shared_pca_keeps_the_axes(toy, toy_ids):
    """The shared fit is not one fit per layer: the last layer's own PCA gives other coordinates."""
    resid = context_residuals(toy.numpy_model(), toy_ids).astype(np.float64)
    shared = projection(resid).coords[-1]  # [T, 2]
    own, _ = svd_pca(resid[-1])
    assert not np.allclose(np.abs(shared), np.abs(own), atol=1e-2)


def test_each_axis_points_its_farthest_point_positive(toy, toy_ids):
    coords = projection(context_residuals(toy.numpy_model(), toy_ids)).coords.reshape(-1, 2)
    farthest = np.abs(coords).argmax(axis=0)
    assert coords[farthest[0], 0] > 0 and coords[farthest[1], 1] > 0


def test_layer_names_count_blocks_from_1():
    assert layer_names(3) == ["emb", "block 1", "block 2", "block 3"]


# ---- outliers ------------------------------------------------------------------------------------
def residuals_with_first_norm(scale: float, seed: int = 0) -> np.ndarray:  # [3, 12, 16]
    """Random residuals whose position 0 is `scale` times longer at the middle layer (as an attention sink)."""
    resid = np.random.default_rng(seed).normal(size=(3, 12, 16))
    resid[1, 0] *= scale
    return resid


def test_a_position_far_beyond_the_median_norm_is_left_out_and_the_rest_are_projected():
    resid = residuals_with_first_norm(60.0)  # as SmolLM2's first token: ~20,000 against a few hundred
    assert outlier_positions(resid) == [0]
    kept, everything = projection(resid), projection(resid, include_outliers=True)
    assert kept.excluded == [0] and kept.positions == list(range(1, 12)) and kept.coords.shape == (3, 11, 2)
    assert everything.excluded == [] and everything.positions == list(range(12))
    assert everything.explained_variance_ratio[0] > 0.9 > kept.explained_variance_ratio[0]  # the outlier takes PC1 alone
    _, ratio = svd_pca(resid[:, 1:].reshape(-1, 16))
    np.testing.assert_allclose(kept.explained_variance_ratio, ratio)


def test_a_norm_a_few_times_the_median_is_not_an_outlier():
    assert outlier_positions(residuals_with_first_norm(OUTLIER_RATIO / 3)) == []


def test_fewer_than_half_the_positions_can_be_outliers():
    resid = np.random.default_rng(1).normal(size=(2, 6, 8))
    resid[:, :3] *= 1000.0  # half of them huge: the median is among them, nothing is 10x above it
    assert len(outlier_positions(resid)) < 3


# ---- where each token was decided ----------------------------------------------------------------
@pytest.mark.parametrize(
    "top1, token, expected",
    [([3, 3, 3], 3, 0), ([5, 3, 3], 3, 1), ([3, 5, 3], 3, 2), ([3, 3, 5], 3, None), ([5, 5, 5], 3, None)],
)
def test_decided_is_the_first_block_from_which_top1_stays_the_token(top1, token, expected):
    assert decided_block(np.array(top1), token) == expected


@torch.inference_mode()
def lens_top1_by_transformers(hf_model, ids: list[int], position: int) -> list[int]:
    """The lens's top-1 after each block at `position`: ln_f and lm_head on transformers' hidden states (the last
    hidden state already has ln_f applied, so its lens is the logits)."""
    out = hf_model(torch.tensor([ids]), output_hidden_states=True)
    transformer = hf_model.transformer
    blocks = [hf_model.lm_head(transformer.ln_f(h[0, position])) for h in out.hidden_states[1:-1]]
    return [int(logits.argmax()) for logits in [*blocks, out.logits[0, position]]]


def expected_decided(top1: list[int], token: int) -> int | None:
    """Walk back from the last block while the lens still says `token`."""
    block = len(top1)
    while block > 0 and top1[block - 1] == token:
        block -= 1
    return None if block == len(top1) else block


def test_the_strip_equals_a_lens_the_test_computes_for_sampled_and_forced_tokens(toy):
    sampler = Sampler(toy, SamplingConfig(temperature=1.5, seed=3), engine="numpy")
    sampler.set_prompt("In a small village,")
    first_generated = len(sampler.tokens)
    for _ in range(14):
        sampler.step()
    sampler.force(toy.tokenizer.encode(" purple", add_special_tokens=False)[0])  # by hand: most likely never the top-1
    ids = list(sampler.tokens)
    ours = decided_blocks(toy.numpy_model(), context_residuals(toy.numpy_model(), ids), ids, first_generated)
    theirs = [expected_decided(lens_top1_by_transformers(toy.hf_model, ids, t - 1), ids[t]) for t in range(first_generated, len(ids))]
    assert ours == theirs
    assert None in ours and any(d == 0 for d in ours) and any(d not in (None, 0) for d in ours)  # every kind of case is exercised
    assert ours[-1] is None


def test_a_generated_token_at_position_0_has_nothing_before_it(toy):
    ids = toy.tokenizer.encode(" the cat sat", add_special_tokens=False)
    net = toy.numpy_model()
    assert decided_blocks(net, context_residuals(net, ids), ids, 0)[0] is None


def test_a_torch_session_computes_them_on_its_own_model_without_a_numpy_copy(toy_tokenizer, tmp_path):
    from engine.runtime.loading import load_model
    from engine.views.representations import decided_blocks
    from tests.conftest import random_llama_dir

    random_llama_dir(tmp_path / "llama", toy_tokenizer, seed=3)
    for path in ("toy", str(tmp_path / "llama")):
        on_torch, on_numpy = load_model(path, device="cpu", engine="torch"), load_model(path, device="cpu", engine="numpy")
        ids = on_numpy.tokenizer.encode(PROMPT, add_special_tokens=False)
        net = on_torch.net_for("torch")
        resid = context_residuals(net, ids)  # [L + 1, T, d]
        np.testing.assert_allclose(resid, context_residuals(on_numpy.net_for("numpy"), ids), atol=2e-4)
        np.testing.assert_allclose(net.lens(resid[-1]), on_numpy.numpy_model().lens(resid[-1]), atol=2e-4)
        assert decided_blocks(net, resid, ids, 8) == decided_blocks(on_numpy.numpy_model(), resid, ids, 8)
        assert on_torch.net is None  # no NumPy copy of the weights was made
