"""Generation under an ablation: the sampler draws from the ablated model until the ablations are cleared."""

import numpy as np
import pytest

from engine.events import SamplingConfig
from engine.model.interventions import parse_ablation, run_numpy
from engine.runtime.sampler import Sampler

PROMPT = "In a small village,"


def sampler(toy, engine: str, **settings) -> Sampler:
    s = Sampler(toy, SamplingConfig(**{"temperature": 0.0, **settings}), engine=engine)
    s.set_prompt(PROMPT)
    return s


def test_the_ablated_distribution_is_the_ablated_models_and_numpy_and_torch_agree(toy):
    ablations = [parse_ablation("0.attn"), parse_ablation("1.mlp")]
    numpy_s, torch_s = sampler(toy, "numpy"), sampler(toy, "torch")
    for s in (numpy_s, torch_s):
        s.set_ablations(ablations)
    (raw_numpy, _), (raw_torch, _) = numpy_s.next_distributions(), torch_s.next_distributions()
    assert np.abs(raw_numpy - raw_torch).max() < 1e-4
    expected = run_numpy(numpy_s.backend.net, numpy_s.tokens, ablations).logits  # [V]
    assert np.allclose(raw_numpy, np.exp(expected - expected.max()) / np.exp(expected - expected.max()).sum())
    view = numpy_s.ablation_view(numpy_s.preview())
    assert view.labels == ("L0.attn", "L1.mlp") and view.kl > 1e-4


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_generation_continues_under_the_ablation_until_cleared(toy, engine):
    intact = sampler(toy, engine)
    intact_tokens = [intact.step().token_id for _ in range(6)]
    ablated = sampler(toy, engine)
    ablated.set_ablations([parse_ablation("0.attn"), parse_ablation("0.mlp")])
    events = [ablated.step() for _ in range(6)]
    assert [e.token_id for e in events] != intact_tokens  # greedy, so the difference is the ablation's
    assert all(e.ablated == ("L0.attn", "L0.mlp") for e in events) and events[0].to_json()["ablated"] == ["L0.attn", "L0.mlp"]
    ablated.set_ablations([])
    assert ablated.ablation_view(ablated.preview()) is None and "ablated" not in ablated.step().to_json()


def test_no_ablation_gives_zero_kl_and_out_of_range_is_one_sentence(toy):
    s = sampler(toy, "numpy")
    s.set_ablations([parse_ablation("0.0")])
    assert s.ablation_view(s.preview()).kl >= 0
    with pytest.raises(ValueError, match=f"layer {toy.info.n_layer} is out of range"):
        s.set_ablations([parse_ablation(f"{toy.info.n_layer}.mlp")])


def test_a_new_prompt_of_the_same_length_gets_its_own_ablated_distribution(toy):
    s = sampler(toy, "numpy")
    s.set_ablations([parse_ablation("0.attn")])
    first = s.next_distributions()[0]
    s.set_prompt("In a big village,")  # as many tokens as PROMPT, other text
    assert len(s.tokens) == len(toy.tokenizer.encode(PROMPT))
    expected = run_numpy(s.backend.net, s.tokens, s.ablations).logits
    assert int(np.argmax(s.next_distributions()[0])) == int(np.argmax(expected)) and not np.array_equal(first, s.next_distributions()[0])


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_the_ablation_view_carries_the_ablated_models_lens_norms_and_cosines(toy, engine):
    s = sampler(toy, engine)
    intact_lens = [e.token_id for e in s.last_lens]
    s.set_ablations([parse_ablation("4.mlp"), parse_ablation("5.mlp")])
    view = s.ablation_view(s.preview())
    run = run_numpy(s.backend.net if engine == "numpy" else toy.numpy_model(), s.tokens, s.ablations)
    norms = np.linalg.norm(run.resid, axis=-1)  # [L + 1]
    assert np.allclose(view.norms, norms, rtol=1e-4) and not np.allclose(view.norms, s.last_norms, rtol=1e-4)
    assert len(view.cosines) == toy.info.n_layer
    lens_logits = toy.numpy_model().lens(run.resid[1:])  # [L, V]
    assert [e.token_id for e in view.lens] == [int(i) for i in lens_logits.argmax(axis=-1)]
    assert view.lens[-1].token_id == s.preview()[0].token_id  # the lens's last row is the ablated model's own top token
    assert [e.token_id for e in view.lens] != intact_lens
