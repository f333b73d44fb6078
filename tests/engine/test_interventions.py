"""Ablation (heads, attention layers, MLPs; zero and mean), direct logit attribution and per-head statistics,
on the NumPy engine and on transformers with hooks, which must agree."""

import math

import numpy as np
import pytest

from engine.model.head_stats import NEAR_UNIFORM_NATS, head_stats, induction_mask, near_uniform, uniform_stats
from engine.model.interventions import Ablation, intervention_hooks, logit_direction, parse_ablation
from engine.model.sampling import KL_FLOOR, entropy, kl_divergence, raw_probs, top_ids
from engine.runtime.interventions import Inspector
from engine.runtime.loading import load_model, loaded_from_hf
from engine.tools.factories import random_gpt2, random_llama

TOL = 1e-4


MODELS = {
    "toy": lambda: load_model("toy", device="cpu"),
    "tiny": lambda: loaded_from_hf(random_gpt2("tiny", seed=3)),
    "llama-gqa": lambda: loaded_from_hf(random_llama("tiny", seed=3)),  # 4 query heads share 2 KV heads: heads are query heads
    "qwen2": lambda: loaded_from_hf(random_llama("tiny", seed=4, model_type="qwen2", tied=True)),
}


@pytest.fixture(scope="module", params=list(MODELS))
def inspectors(request):
    loaded = MODELS[request.param]()
    ids = [(7 * i + 3) % loaded.info.vocab_size for i in range(10)] + [5, 9, 5]  # a repeat, for the induction rows
    return Inspector(loaded, "numpy"), Inspector(loaded, "torch"), ids


def specs(*texts):
    return tuple(parse_ablation(t) for t in texts)


# ---- the spec ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("0.1", Ablation(0, "head", 1)),
        ("1.attn", Ablation(1, "attn")),
        ("0.mlp", Ablation(0, "mlp")),
        ("L1.H3", Ablation(1, "head", 3)),
        (" 2.MLP ", Ablation(2, "mlp")),
    ],
)
def test_specs_parse_and_labels_parse_back(text, expected):
    ablation = parse_ablation(text)
    assert ablation == expected
    assert parse_ablation(ablation.spec) == ablation == parse_ablation(ablation.label)


@pytest.mark.parametrize("text", ["", "0", "x.1", "0.", "0.attn.1", "-1.2", "0.head", "1.2.3", "0,1"])
def test_malformed_specs_are_one_sentence_naming_the_format(text):
    with pytest.raises(ValueError) as error:
        parse_ablation(text)
    assert "L.H (a head), L.attn or L.mlp" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("text, words", [("2.1", "layers 0-1"), ("5.mlp", "layers 0-1"), ("0.4", "heads 0-3"), ("1.17", "heads 0-3")])
def test_out_of_range_names_the_allowed_range(text, words):
    with pytest.raises(ValueError, match=words):
        parse_ablation(text, n_layer=2, n_head=4)
    parse_ablation("1.3", n_layer=2, n_head=4)  # the edges are allowed


# ---- what an ablation does ----------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_ablating_every_head_of_a_layer_equals_ablating_the_layer_attention(inspectors, mode):
    numpy_side, torch_side, ids = inspectors
    H = numpy_side.n_head
    for layer in range(numpy_side.n_layer):
        every_head = specs(*[f"{layer}.{h}" for h in range(H)])
        for inspector in (numpy_side, torch_side):
            attn = inspector.run(ids, specs(f"{layer}.attn"), mode)
            heads = inspector.run(ids, every_head, mode)
            np.testing.assert_allclose(heads.logits, attn.logits, rtol=0, atol=1e-6)
            np.testing.assert_allclose(heads.z, attn.z, rtol=0, atol=1e-6)
        intact = numpy_side.run(ids)
        assert np.abs(numpy_side.run(ids, specs(f"{layer}.attn"), mode).logits - intact.logits).max() > 1e-6  # it does something


def test_zero_ablation_leaves_only_the_output_bias_and_mean_ablation_the_mean_output():
    net = Inspector(load_model("toy", device="cpu"), "numpy").net
    ids = list(range(3, 15))
    _, intact = net.forward(ids)
    for layer in range(net.n_layer):
        block = net.params["blocks"][layer]
        _, zero = net.forward(ids, hooks=intervention_hooks(specs(f"{layer}.attn", f"{layer}.mlp"), net.n_layer, net.n_head))
        np.testing.assert_allclose(
            zero[f"blocks.{layer}.hook_attn_out"], np.broadcast_to(block["attn"]["o"]["b"], (len(ids), net.d_model)), atol=1e-6
        )
        np.testing.assert_allclose(
            zero[f"blocks.{layer}.hook_mlp_out"], np.broadcast_to(block["mlp"]["down"]["b"], (len(ids), net.d_model)), atol=1e-6
        )
    _, mean = net.forward(ids, hooks=intervention_hooks(specs("0.attn"), net.n_layer, net.n_head, mode="mean"))
    expected = intact["blocks.0.hook_attn_out"].mean(axis=0)  # layer 0's input is untouched, so its mean output is the intact one's
    np.testing.assert_allclose(mean["blocks.0.hook_attn_out"], np.broadcast_to(expected, (len(ids), net.d_model)), atol=1e-5)


def test_a_head_ablation_zeroes_that_head_only(inspectors):
    numpy_side, torch_side, ids = inspectors
    for inspector in (numpy_side, torch_side):
        intact, ablated = inspector.run(ids), inspector.run(ids, specs("0.1"))
        assert np.all(ablated.z[0, 1] == 0) and np.abs(intact.z[0, 1]).max() > 0
        np.testing.assert_allclose(ablated.z[0, [0, 2, 3]], intact.z[0, [0, 2, 3]], atol=1e-6)  # same layer, upstream of the change


@pytest.mark.parametrize("ablations", [(), ("0.1",), ("0.attn",), ("1.mlp",), ("0.2", "1.attn", "0.mlp")])
@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_numpy_and_torch_agree_on_ablated_logits_and_attribution(inspectors, ablations, mode):
    numpy_side, torch_side, ids = inspectors
    a, b = numpy_side.run(ids, specs(*ablations), mode), torch_side.run(ids, specs(*ablations), mode)
    np.testing.assert_allclose(a.logits, b.logits, rtol=0, atol=TOL)
    np.testing.assert_allclose(a.attention, b.attention, rtol=0, atol=TOL)
    token = int(np.argmax(a.logits))
    da, db = numpy_side.attribution(a, token), torch_side.attribution(b, token)
    parts_a, parts_b = da.components(), db.components()
    assert parts_a.keys() == parts_b.keys()
    np.testing.assert_allclose(list(parts_a.values()), list(parts_b.values()), rtol=0, atol=TOL)
    assert da.bias == pytest.approx(db.bias, abs=TOL)


@pytest.mark.parametrize("ablations", [(), ("0.1", "1.mlp")])
def test_attribution_sums_to_the_logit(inspectors, ablations):
    for inspector in inspectors[:2]:
        run = inspector.run(inspectors[2], specs(*ablations))
        for token in (int(np.argmax(run.logits)), 0, 17):
            attribution = inspector.attribution(run, token)
            assert attribution.total() == pytest.approx(float(run.logits[token]), abs=TOL)
            parts = attribution.components()
            layers = [v for k, v in parts.items() if k.endswith((".attn", ".mlp"))]
            assert parts["embed"] + sum(layers) + attribution.bias == pytest.approx(attribution.logit, abs=TOL)


def test_head_parts_add_up_to_the_layer_attention_output():
    inspector = Inspector(load_model("toy", device="cpu"), "numpy")
    net, ids = inspector.net, list(range(4, 16))
    run = inspector.run(ids)
    _, captures = net.forward(ids)
    token = int(np.argmax(run.logits))
    attribution = inspector.attribution(run, token)
    direction = logit_direction(
        run.resid_final.astype(np.float64), net.params["norm_f"], net.params["unembed"][:, token].astype(np.float64), net.arch.norm_eps
    )
    for layer in range(net.n_layer):  # the whole sublayer's output, through the same frozen ln_f, independently of the per-head split
        assert attribution.attn[layer] == pytest.approx(float(captures[f"blocks.{layer}.hook_attn_out"][-1] @ direction), abs=TOL)
        assert attribution.mlp[layer] == pytest.approx(float(captures[f"blocks.{layer}.hook_mlp_out"][-1] @ direction), abs=TOL)
    assert attribution.bias == pytest.approx(float(net.params["norm_f"]["b"] @ net.params["unembed"][:, token]), abs=1e-5)


def test_kl_and_entropy():
    p = np.array([0.5, 0.5, 0.0])
    assert kl_divergence(p, p) == 0.0
    assert kl_divergence(p, np.array([0.25, 0.25, 0.5])) == pytest.approx(math.log(2))
    assert entropy(p) == pytest.approx(math.log(2)) and entropy(np.array([0.0, 1.0])) == 0.0
    assert kl_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(-math.log(KL_FLOOR))  # q floored, not infinite
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(raw_probs(logits).sum(axis=-1), 1.0)  # row by row
    assert top_ids(np.array([0.1, 0.4, 0.1, 0.4]), 3).tolist() == [1, 3, 0]  # most likely first, ties by id


# ---- per-head statistics -------------------------------------------------------------------------
def rows(T, fn):  # a [1, 1, T, T] pattern whose row i is fn(i)
    pattern = np.zeros((1, 1, T, T))
    for i in range(T):
        pattern[0, 0, i] = fn(i)
    return pattern


def one_hot(T, j):
    row = np.zeros(T)
    row[j] = 1.0
    return row


def test_head_statistics_on_patterns_with_known_answers():
    T, ids = 6, [1, 2, 3, 1, 2, 3]
    previous = head_stats(rows(T, lambda i: one_hot(T, max(i - 1, 0))), ids)
    assert previous["prev_token"][0, 0] == 1.0 and previous["entropy"][0, 0] == 0.0 and previous["sink"][0, 0] == pytest.approx(1 / 5)
    sink = head_stats(rows(T, lambda i: one_hot(T, 0)), ids)
    assert sink["sink"][0, 0] == 1.0 and sink["prev_token"][0, 0] == pytest.approx(1 / 5)
    uniform = head_stats(rows(T, lambda i: np.r_[np.full(i + 1, 1 / (i + 1)), np.zeros(T - i - 1)]), ids)
    assert uniform["entropy"][0, 0] == pytest.approx(np.mean([math.log(i + 1) for i in range(1, T)]))
    # induction: at i = 3..5 (1, 2, 3 again) attend to the token after the earlier occurrence, i - 2
    induction = head_stats(rows(T, lambda i: one_hot(T, i - 2) if i >= 3 else one_hot(T, 0)), ids)
    assert induction["induction"][0, 0] == 1.0 and induction["duplicate"][0, 0] == 0.0
    duplicate = head_stats(rows(T, lambda i: one_hot(T, i - 3) if i >= 3 else one_hot(T, 0)), ids)
    assert duplicate["duplicate"][0, 0] == 1.0 and duplicate["induction"][0, 0] == 0.0
    no_repeat = head_stats(rows(4, lambda i: one_hot(4, 0)), [1, 2, 3, 4])
    assert math.isnan(no_repeat["induction"][0, 0]) and math.isnan(no_repeat["duplicate"][0, 0])
    assert induction_mask([7, 7])[1, 1]  # "A A": the token after the first A is the second A itself


def test_the_uniform_baseline_is_even_attention_on_the_context_and_its_entropy_gap_is_the_kl_from_it():
    T, ids = 6, [1, 2, 3, 1, 2, 3]
    uniform = uniform_stats(ids)
    assert uniform["entropy"] == pytest.approx(np.mean([math.log(i + 1) for i in range(1, T)]))
    assert uniform["sink"] == pytest.approx(np.mean([1 / (i + 1) for i in range(1, T)])) == uniform["prev_token"]
    assert uniform["induction"] == pytest.approx(np.mean([1 / 4, 1 / 5, 1 / 6]))  # rows 3..5 each put 1/(i+1) on one key
    focused = rows(T, lambda i: np.r_[np.full(i + 1, 0.2 / (i + 1)), np.zeros(T - i - 1)] + 0.8 * one_hot(T, i))
    entropy = head_stats(focused, ids)["entropy"][0, 0]
    kl = np.mean([np.sum(focused[0, 0, i, : i + 1] * np.log(focused[0, 0, i, : i + 1] * (i + 1))) for i in range(1, T)])
    assert uniform["entropy"] - entropy == pytest.approx(kl)  # the gap is the mean KL(row ‖ uniform)
    assert not near_uniform(entropy, uniform["entropy"]) and kl > NEAR_UNIFORM_NATS
    assert near_uniform(uniform["entropy"] - NEAR_UNIFORM_NATS / 2, uniform["entropy"])


def test_head_statistics_of_a_model_context(inspectors):
    numpy_side, _, ids = inspectors
    run = numpy_side.run(ids)
    stats = head_stats(run.attention, ids)
    for name, values in stats.items():
        assert values.shape == (numpy_side.n_layer, numpy_side.n_head), name
        assert np.all(np.isfinite(values)), name
    assert np.all((stats["sink"] >= 0) & (stats["sink"] <= 1)) and np.all(stats["entropy"] <= math.log(len(ids)) + 1e-9)
    with pytest.raises(ValueError, match="L, H, T, T"):
        head_stats(run.attention[0], ids)


# ---- the timeline: each token event carries its distribution's entropy ------------------------
@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_token_events_carry_the_entropy_of_their_distributions(toy, engine):
    from engine.events import SamplingConfig
    from engine.model.sampling import warp_probs
    from engine.runtime.sampler import Sampler

    sampler = Sampler(toy, SamplingConfig(temperature=0.7, top_k=5, seed=0), engine=engine)
    sampler.set_prompt("In a small village,")
    p_raw, p = sampler.next_distributions()
    event = sampler.step()
    assert event.entropy_raw == pytest.approx(float(entropy(p_raw))) and event.entropy == pytest.approx(float(entropy(p)))
    assert 0 < event.entropy <= math.log(5) + 1e-9 and event.entropy_raw > 0  # top-k 5 leaves at most 5 tokens
    assert event.to_json()["entropy"] == round(event.entropy, 6)
    sampler.set_config(temperature=0.0)
    greedy = sampler.step()
    assert greedy.entropy == 0.0 and greedy.entropy_raw > 0  # greedy draws from a one-hot distribution
    logits = np.array([0.0, 1.0, 2.0])
    assert float(entropy(warp_probs(logits, 1.0, 0, 1.0))) == pytest.approx(float(entropy(raw_probs(logits))))


def test_gpt2_small_shape_agrees_across_engines_and_attribution_sums(gpt2_small_hf):
    loaded = loaded_from_hf(gpt2_small_hf)
    numpy_side, torch_side = Inspector(loaded, "numpy"), Inspector(loaded, "torch")
    ids = [(31 * i + 7) % 50257 for i in range(24)]
    ablations = specs("3.5", "7.attn", "10.mlp")
    a, b = numpy_side.run(ids, ablations, "mean"), torch_side.run(ids, ablations, "mean")
    np.testing.assert_allclose(a.logits, b.logits, rtol=0, atol=TOL)
    token = int(np.argmax(a.logits))
    da, db = numpy_side.attribution(a, token), torch_side.attribution(b, token)
    assert len(da.components()) == 1 + 12 * 14
    np.testing.assert_allclose(list(da.components().values()), list(db.components().values()), rtol=0, atol=TOL)
    assert da.total() == pytest.approx(da.logit, abs=TOL) and db.total() == pytest.approx(db.logit, abs=TOL)
    stats = head_stats(a.attention, ids)
    assert stats["entropy"].shape == (12, 12)


# ---- mean ablation over a reference text -------------------------------------------------------
def ablated_logits_by_hand(hf_model, ids, reference, ablations):  # -> [V] the last position's logits
    """Mean ablation over `reference`, done without tfund's code: forward pre-hooks on transformers' own
    modules take the inputs of each ablated output projection (GPT-2's attn.c_proj, Llama's o_proj: the
    merged heads) and down projection over the reference, average them over its positions, then write
    those averages over the ablated columns at every position of a forward over `ids`."""
    import torch

    config = hf_model.config
    gpt2 = config.model_type == "gpt2"
    layers = hf_model.transformer.h if gpt2 else hf_model.model.layers
    d_head = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    columns: dict = {}  # module -> the input columns it is ablated on
    for a in ablations:
        module = (layers[a.layer].mlp.c_proj if gpt2 else layers[a.layer].mlp.down_proj) if a.kind == "mlp" else None
        module = module or (layers[a.layer].attn.c_proj if gpt2 else layers[a.layer].self_attn.o_proj)
        width = slice(a.head * d_head, (a.head + 1) * d_head) if a.kind == "head" else slice(None)
        columns.setdefault(module, []).append(width)

    def forward(token_ids, hook_of):
        handles = [module.register_forward_pre_hook(hook_of(module)) for module in columns]
        try:
            with torch.no_grad():
                return hf_model(torch.tensor([token_ids]), use_cache=False).logits[0, -1]  # [V]
        finally:
            for handle in handles:
                handle.remove()

    means = {}  # module -> [width] its input averaged over the reference's positions
    forward(reference, lambda module: lambda _, args: means.__setitem__(module, args[0][0].mean(dim=0)))

    def replace(module):
        def hook(_, args):
            x = args[0].clone()  # [1, T, width]
            for cols in columns[module]:
                x[..., cols] = means[module][cols]
            return (x, *args[1:])

        return hook

    return forward(ids, replace).numpy()


@pytest.mark.parametrize("ablations", [("0.1",), ("1.attn", "0.mlp"), ("0.0", "0.attn", "1.mlp")])
def test_mean_ablation_over_a_reference_text_matches_means_taken_by_hand(inspectors, ablations):
    numpy_side, torch_side, ids = inspectors
    vocab = numpy_side.loaded.info.vocab_size
    reference = [(5 * i + 1) % vocab for i in range(17)]
    expected = ablated_logits_by_hand(numpy_side.loaded.hf_model, ids, reference, specs(*ablations))  # [V]
    for inspector in (numpy_side, torch_side):
        means = inspector.reference_means(reference, specs(*ablations))
        run = inspector.run(ids, specs(*ablations), "mean", means)
        np.testing.assert_allclose(run.logits, expected, rtol=0, atol=TOL)
    over_context = numpy_side.run(ids, specs(*ablations), "mean").logits
    assert np.abs(over_context - expected).max() > 100 * TOL  # a reference mean is not the context's


def test_reference_means_average_every_position_of_an_intact_forward(inspectors):
    numpy_side, torch_side, ids = inspectors
    ablations = specs("0.1", "1.mlp")
    _, captures = numpy_side.net.forward(ids)
    by_numpy, by_torch = numpy_side.reference_means(ids, ablations), torch_side.reference_means(ids, ablations)
    assert by_numpy.keys() == by_torch.keys() == {"blocks.0.attn.hook_z", "blocks.1.mlp.hook_post"}
    np.testing.assert_allclose(by_numpy["blocks.1.mlp.hook_post"], captures["blocks.1.mlp.hook_post"].mean(axis=0), atol=1e-6)
    for name in by_numpy:
        np.testing.assert_allclose(by_numpy[name], by_torch[name], rtol=0, atol=TOL)
    # the context as its own reference: for one component, the same as averaging over the context ...
    for one in ([ablations[0]], [ablations[1]]):
        own = numpy_side.reference_means(ids, one)
        np.testing.assert_allclose(numpy_side.run(ids, one, "mean", own).logits, numpy_side.run(ids, one, "mean").logits, rtol=0, atol=TOL)
    # ... but not for both: the context mean of 1.mlp is taken in the forward where 0.1 is already
    # ablated, a reference mean in an intact forward
    both, over_context = numpy_side.run(ids, ablations, "mean", by_numpy).logits, numpy_side.run(ids, ablations, "mean").logits
    assert np.abs(both - over_context).max() > 10 * TOL  # 4e-3 on the tiny random GPT-2, 0.1 and more on the others
    with pytest.raises(ValueError, match="the reference text needs at least one token"):
        numpy_side.reference_means([], ablations)
