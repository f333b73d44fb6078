"""Compare: KL and top-1 per step, shared context, two models or one model at two temperatures."""

import json
import math
import threading

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from engine.events import SamplingConfig
from engine.runtime.loading import load_model
from engine.runtime.sampler import Sampler
from engine.views.compare import CompareSession, compare_run, compare_step, format_compare_table, same_top_text
from tests.conftest import random_gpt2_dir

PROMPT = "In a small village,"


@pytest.fixture(scope="module")
def same_vocab_model(toy_tokenizer, tmp_path_factory):
    """Another model on the toy's tokenizer (random weights)."""
    return load_model(random_gpt2_dir(tmp_path_factory.mktemp("same_vocab"), toy_tokenizer, seed=0), device="cpu")


@pytest.fixture(scope="module")
def other_vocab_model(tmp_path_factory):
    """A random model with its own byte-level BPE (a different vocabulary from the toy's)."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<|endoftext|>"])
    bpe.train_from_iterator(["In a small village, a baker lived with a cat.", "The cat was happy."] * 5, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    return load_model(random_gpt2_dir(tmp_path_factory.mktemp("other_vocab"), tokenizer, seed=1), device="cpu")


def session(model_a, model_b, config_a, config_b, follow="a"):
    s = CompareSession(Sampler(model_a, config_a), Sampler(model_b, config_b), follow=follow)
    s.set_prompt(PROMPT)
    return s


# ---- compare_step --------------------------------------------------------------------------
def test_kl_of_identical_distributions_is_zero():
    p = np.array([0.1, 0.6, 0.3])
    assert compare_step(p, p) == (0.0, True)


def test_kl_matches_the_formula_and_is_asymmetric():
    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    expected = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    kl, agree = compare_step(p, q)
    assert kl == pytest.approx(expected, rel=1e-12)
    assert agree  # ties go to the lowest id on both sides
    assert compare_step(q, p)[0] != pytest.approx(expected)


def test_zeros_in_a_are_ignored_and_zeros_in_b_are_floored():
    assert compare_step(np.array([0.0, 1.0]), np.array([0.5, 0.5]))[0] == pytest.approx(math.log(2))
    kl, agree = compare_step(np.array([1.0, 0.0]), np.array([0.0, 1.0]))  # b rules out a's only token
    assert kl == pytest.approx(math.log(1e10)) and not agree


def test_distributions_over_different_vocabularies_are_refused():
    with pytest.raises(ValueError, match="same vocabulary"):
        compare_step(np.ones(3) / 3, np.ones(4) / 4)


# ---- one model, two temperatures -----------------------------------------------------------
def test_one_model_at_two_temperatures_shares_the_context(toy):
    s = session(toy, toy, SamplingConfig(temperature=0.5, seed=1), SamplingConfig(temperature=1.5, seed=2))
    assert s.mode == "vocab"
    steps = list(s.run(8))
    assert len(steps) == 8
    assert s.a.tokens == s.b.tokens and s.a.text == s.b.text
    for st in steps:
        assert st.event_b.forced and st.event_b.token_id == st.event_a.token_id
        assert st.kl_raw < 1e-9  # same weights, same context: the raw beliefs are identical
        assert st.kl >= 0
        assert st.top1_agree  # temperature never moves the argmax
        assert st.candidates_a[0].token_id == st.candidates_b[0].token_id
    assert max(st.kl for st in steps) > 0.01  # the temperatures reshape the same beliefs differently


def test_two_samplers_on_one_model_do_not_interfere(toy):
    config = SamplingConfig(temperature=1.0, seed=5)
    solo = Sampler(toy, config)
    solo.set_prompt(PROMPT)
    expected = list(solo.run(6))
    s = session(toy, toy, config, SamplingConfig(temperature=0.3, seed=9))
    for ev, st in zip(expected, s.run(6)):
        got = st.event_a
        assert got.token_id == ev.token_id
        np.testing.assert_allclose(got.attention, ev.attention, atol=1e-6)
        np.testing.assert_allclose(got.norms, ev.norms, rtol=1e-5)
        assert [e.token_id for e in got.lens] == [e.token_id for e in ev.lens]
    np.testing.assert_allclose(s.a.attention_matrix(), s.b.attention_matrix(), atol=1e-6)  # same context, same model


# ---- two models -----------------------------------------------------------------------------
def test_two_models_with_one_vocabulary_compare_by_id(toy, same_vocab_model):
    s = session(toy, same_vocab_model, SamplingConfig(temperature=1.0, seed=0), SamplingConfig(temperature=1.0, seed=0))
    assert s.mode == "vocab"
    steps = list(s.run(5))
    assert all(st.kl_raw > 0.1 for st in steps)  # a trained model and a random one disagree
    assert s.a.tokens == s.b.tokens


def test_follow_b_forces_a(toy, same_vocab_model):
    s = session(toy, same_vocab_model, SamplingConfig(seed=0), SamplingConfig(seed=0), follow="b")
    st = s.step()
    assert st.event_a.forced and not st.event_b.forced and st.event_a.token_id == st.event_b.token_id


def test_independent_samplers_each_pick(toy):
    s = session(toy, toy, SamplingConfig(temperature=2.0, seed=1), SamplingConfig(temperature=2.0, seed=2), follow=None)
    steps = list(s.run(6))
    assert not any(st.event_a.forced or st.event_b.forced for st in steps)
    assert s.a.tokens != s.b.tokens  # different seeds at a high temperature drift apart


def test_different_vocabularies_compare_on_text(toy, other_vocab_model):
    s = session(toy, other_vocab_model, SamplingConfig(temperature=0.0), SamplingConfig(temperature=1.0, seed=0))
    assert s.mode == "text"
    steps = list(s.run(6))
    assert not s.a.done
    assert s.b.text == s.a.text  # b was fed a's text, tokenized its own way
    assert s.b.tokens != s.a.tokens
    for st in steps:
        assert 0.0 <= st.kl < 30 and math.isfinite(st.kl_raw)
        assert st.text_b == st.text_a  # every piece b took for a's one piece, however many tokens it was here


def test_in_text_mode_top1_is_a_text_never_the_pooled_rest():
    p_a = np.array([0.2, 0.1, 0.7])  # [K + 1]: two texts, then "other"
    p_b = np.array([0.1, 0.3, 0.6])
    assert same_top_text(p_a, p_b) is False  # a's top text is the first, b's the second; "other" is largest for both
    assert same_top_text(p_a, np.array([0.3, 0.1, 0.6])) is True


def test_compare_session_needs_two_samplers(toy):
    sampler = Sampler(toy)
    with pytest.raises(ValueError, match="two Sampler instances"):
        CompareSession(sampler, sampler)
    with pytest.raises(ValueError, match="follow"):
        CompareSession(sampler, Sampler(toy), follow="c")


# ---- compare_run / the CLI's table ---------------------------------------------------------
def test_compare_run_is_plain_json_and_the_table_has_a_row_per_step(toy):
    result = compare_run(toy, "toy", PROMPT, 5, SamplingConfig(temperature=0.7, seed=3), SamplingConfig(temperature=1.4, seed=3))
    assert json.loads(json.dumps(result)) == result
    assert result["model_a"] == result["model_b"] == "toy" and result["mode"] == "vocab"
    assert len(result["steps"]) == 5 and result["top1_agreement"] == 1.0
    assert result["mean_kl"] > 0 and result["mean_kl_raw"] < 1e-6
    assert result["text_a"] == result["text_b"] and result["text_a"].startswith(PROMPT)
    table = format_compare_table(result)
    lines = table.splitlines()
    assert sum(1 for line in lines if line.lstrip()[:1].isdigit()) == 5
    assert "temperature 0.70" in table and "temperature 1.40" in table and "top-1 agreement 5/5" in table


def test_compare_run_stops_when_cancelled(toy):
    cancel = threading.Event()
    cancel.set()
    result = compare_run(toy, toy, PROMPT, 5, SamplingConfig(), SamplingConfig(), cancel=cancel)
    assert result["steps"] == [] and result["top1_agreement"] == 0.0


def test_compare_json_reports_the_settings_it_ran_with(capsys):
    from engine.cli import main as tfund

    assert tfund(["compare", "--max-new-tokens", "3", "--temperature-a", "0.5", "--temperature-b", "1.5", "--seed", "7", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["steps"]) == 3
    for side, temperature in (("settings_a", 0.5), ("settings_b", 1.5)):
        assert result[side]["max_new_tokens"] == 3 and result[side]["temperature"] == temperature and result[side]["seed"] == 7
