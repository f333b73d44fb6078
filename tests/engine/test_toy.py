"""The toy corpus generator, the shipped toy model, and a tiny train_toy run."""

import json
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from transformers import AutoTokenizer, GPT2LMHeadModel

from engine.runtime.sources import TOY_MODEL_DIR
from engine.tools.lens_agreement import bench_lens
from engine.toy.corpus import END_OF_TEXT, NUMBER_WORDS, corpus_text, generate_corpus
from engine.toy.train import ToyConfig, train_toy

PROMPT = "In a small village,"
WORD = re.compile(r"[a-z]+")


@pytest.fixture(scope="module")
def stories():
    return generate_corpus(ToyConfig.n_stories, seed=0)


@pytest.fixture(scope="module")
def shipped():
    model = GPT2LMHeadModel.from_pretrained(TOY_MODEL_DIR, use_safetensors=True)
    return model.eval(), AutoTokenizer.from_pretrained(TOY_MODEL_DIR)


def test_same_seed_same_corpus_other_seed_differs():
    assert generate_corpus(50, seed=3) == generate_corpus(50, seed=3)
    assert corpus_text(50, seed=3) == corpus_text(50, seed=3)
    assert generate_corpus(50, seed=4) != generate_corpus(50, seed=3)


def test_corpus_text_is_the_stories_each_followed_by_end_of_text():
    text = corpus_text(20, seed=1)
    assert text.split(END_OF_TEXT)[:-1] == generate_corpus(20, seed=1)
    assert text.endswith(END_OF_TEXT)


def test_default_corpus_is_about_a_megabyte_of_varied_stories(stories):
    text = "".join(stories)
    assert 1_000_000 < len(text.encode("utf-8")) < 2_000_000
    assert len(set(stories)) == len(stories)
    village = sum(story.startswith(PROMPT) for story in stories)
    assert 0.3 * len(stories) < village < 0.8 * len(stories)
    assert 400 <= len(set(WORD.findall(text.lower()))) <= 1500


def test_corpus_has_dialogue_and_counted_things(stories):
    with_dialogue = [s for s in stories if re.search(r'"[A-Z][^"]*[,.!?]" (said|asked|cried|shouted|whispered|called|replied)', s)]
    assert len(with_dialogue) > 0.5 * len(stories)
    counted = re.findall(rf"\b({'|'.join(NUMBER_WORDS[2:])}) ([a-z]+s)\b", "".join(stories))
    assert len(counted) > len(stories) // 2
    assert len({n for n, _ in counted}) >= 6


def test_counts_in_the_stories_add_up(stories):
    value = {word: n for n, word in enumerate(NUMBER_WORDS)}
    n = f"({'|'.join(NUMBER_WORDS)})"
    market = re.compile(rf"had {n} coins? in \w+ pocket\..*?paid {n} coins?\. Now \w+ had {n} coins?", re.S)
    sharing = re.compile(
        rf"(?:found|gave him|gave her) {n} [a-z ]+?\..*?gave {n} [a-z ]+? to \w+\. Now \w+ had {n} [a-z ]+? left\."
        rf"(?: Later[^.]*one more\. Now \w+ had {n} )?",
        re.S,
    )
    checked = 0
    for story in stories:
        if match := market.search(story):
            had, paid, left = (value[w] for w in match.groups())
            assert had - paid == left, story
            checked += 1
        if match := sharing.search(story):
            had, gave, left = (value[w] for w in match.groups()[:3])
            assert had - gave == left, story
            if match.group(4):
                assert left - 1 == value[match.group(4)], story
            checked += 1
    assert checked > 300


def test_shipped_model_is_safetensors_with_a_matching_tokenizer(shipped):
    model, tokenizer = shipped
    files = {p.name for p in TOY_MODEL_DIR.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "training_metrics.json"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pth", ".ckpt")) for name in files)
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.model_max_length == model.config.n_positions
    assert tokenizer.eos_token == tokenizer.bos_token == END_OF_TEXT
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert tokenizer.convert_tokens_to_ids(END_OF_TEXT) == tokenizer.eos_token_id


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=40))
def test_tokenizer_round_trips_any_text(shipped, text):
    _, tokenizer = shipped
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text


def test_tokenizer_round_trips_non_ascii_and_knows_story_words(shipped):
    _, tokenizer = shipped
    text = "In a small village, Zoë said «¡hola!» to 小明 🦊 at 3:00\n\tThe end."
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text
    assert len(tokenizer.encode(" village", add_special_tokens=False)) == 1
    assert tokenizer.encode(f"once{END_OF_TEXT}", add_special_tokens=False)[-1] == tokenizer.eos_token_id


def test_shipped_held_out_loss_clearly_beats_the_unigram_baseline():
    metrics = json.loads((TOY_MODEL_DIR / "training_metrics.json").read_text(encoding="utf-8"))
    assert metrics["heldout_tokens"] > 10_000
    assert metrics["heldout_loss"] < 0.25 * metrics["unigram_loss"]
    assert metrics["unigram_loss"] - metrics["heldout_loss"] > 3.0


PREVIOUS_TOY_HELDOUT_LOSS = 0.3973  # nats/token of the 2-layer × 128 toy this one replaced, on the same held-out stories
MAX_SHIPPED_WEIGHTS_BYTES = 20 * 2**20


def test_shipped_toy_is_deep_enough_to_watch_and_no_worse_than_the_one_it_replaced():
    metrics = json.loads((TOY_MODEL_DIR / "training_metrics.json").read_text(encoding="utf-8"))
    assert metrics["config"]["n_layer"] >= 4
    assert metrics["heldout_loss"] <= PREVIOUS_TOY_HELDOUT_LOSS
    assert (TOY_MODEL_DIR / "model.safetensors").stat().st_size <= MAX_SHIPPED_WEIGHTS_BYTES


def greedy_continuation(model, tokenizer, prompt, n_tokens):
    ids = torch.tensor([tokenizer.encode(prompt, add_special_tokens=False)])  # [1, T]
    with torch.no_grad():
        for _ in range(n_tokens):
            next_id = model(input_ids=ids).logits[0, -1].argmax()
            ids = torch.cat([ids, next_id.view(1, 1)], dim=1)  # [1, T+1]
    return tokenizer.decode(ids[0].tolist())[len(prompt) :].split(END_OF_TEXT)[0]


def test_shipped_model_continues_a_story_with_corpus_words(shipped, stories):
    continuation = greedy_continuation(*shipped, PROMPT, 40)
    known = set(WORD.findall("".join(stories).lower()))
    words = WORD.findall(continuation.lower())
    assert len(words) >= 15
    assert set(words) <= known


def test_shipped_model_keeps_its_hero_name_and_pronoun(shipped):
    heroes = [
        ("Nora", "girl", "She"),
        ("Leo", "boy", "He"),
        ("Ruby", "girl", "She"),
        ("Omar", "boy", "He"),
        ("Tilly", "girl", "She"),
        ("Felix", "boy", "He"),
    ]
    kept = 0
    for name, noun, pronoun in heroes:
        continuation = greedy_continuation(*shipped, f"In a small village, there lived a brave {noun} named {name}.", 50)
        assert continuation.startswith(f" {pronoun} "), continuation
        kept += name in continuation
    assert kept >= 5


def tiny_run(path, seed=0, progress=None):
    return train_toy(
        path,
        steps=5,
        seed=seed,
        progress=progress,
        n_stories=30,
        vocab_size=300,
        n_layer=1,
        n_head=2,
        n_embd=32,
        n_positions=64,
        block_size=32,
        batch_size=4,
        progress_every=2,
    )


def test_tiny_train_toy_run_writes_a_loadable_model(tmp_path):
    calls = []
    rng_before = torch.random.get_rng_state()
    threads_before = torch.get_num_threads()
    metrics = tiny_run(tmp_path / "a", progress=lambda step, total, loss: calls.append((step, total, loss)))
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # the caller's random stream is untouched
    assert torch.get_num_threads() == threads_before
    assert [(step, total) for step, total, _ in calls] == [(2, 5), (4, 5), (5, 5)]
    assert json.loads((tmp_path / "a" / "training_metrics.json").read_text()) == metrics
    assert metrics["steps"] == 5 and metrics["n_params"] > 0
    assert 0 < metrics["heldout_loss"] < float("inf") and 0 < metrics["unigram_loss"] < float("inf")
    model = GPT2LMHeadModel.from_pretrained(tmp_path / "a", use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "a")
    assert model.config.n_layer == 1 and model.config.vocab_size == len(tokenizer) <= 300
    assert not (tmp_path / "a" / "corpus.txt").exists()  # the corpus is regenerated from its seed, never shipped


def test_tiny_train_toy_run_is_reproducible_from_its_seed(tmp_path):
    first = tiny_run(tmp_path / "a")
    again = tiny_run(tmp_path / "b")
    other = tiny_run(tmp_path / "c", seed=1)
    weights = [load_file(tmp_path / name / "model.safetensors") for name in "abc"]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert first["heldout_loss"] == again["heldout_loss"]
    assert not torch.equal(weights[0]["transformer.wte.weight"], weights[2]["transformer.wte.weight"])
    assert other["heldout_loss"] != first["heldout_loss"]


def test_lens_agreement_scores_every_held_out_position_and_the_last_block_is_the_prediction(tmp_path):
    metrics = tiny_run(tmp_path / "a")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "a")
    result = bench_lens(tmp_path / "a", tokenizer)
    assert result["positions"] == metrics["heldout_tokens"]  # the positions train_toy scored
    assert len(result["agreement"]) == len(result["accuracy"]) == 1
    assert result["agreement"][-1] == 1.0 and 0 <= result["accuracy"][-1] <= 1
