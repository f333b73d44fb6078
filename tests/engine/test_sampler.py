"""The step API: greedy agreement with transformers, sampling statistics, undo/force, settings, window."""

import dataclasses
import math
import time

import numpy as np
import pytest
import torch

from engine.events import DEFAULT_PROMPT, SamplingConfig
from engine.model.sampling import sample
from engine.runtime.sampler import GenerationDone, Sampler
from tests.engine.conftest import SAMPLING_SETTINGS, chi2_critical, chi2_of_draws

PROMPT = "In a small village,"


def greedy_sampler(model, engine="torch", **settings):
    sampler = Sampler(model, SamplingConfig(temperature=0.0, **settings), engine=engine)
    sampler.set_prompt(PROMPT)
    return sampler


def hf_greedy(model, prompt_ids, n):
    with torch.no_grad():
        out = model.hf_model.generate(
            torch.tensor([prompt_ids]),
            attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
            do_sample=False,
            max_new_tokens=n,
            eos_token_id=None,
            pad_token_id=model.tokenizer.eos_token_id,
        )
    return out[0, len(prompt_ids) :].tolist()


def test_greedy_equals_transformers_generate_for_both_engines(toy):
    prompt_ids = toy.tokenizer.encode(PROMPT, add_special_tokens=False)
    expected = hf_greedy(toy, prompt_ids, 24)
    for engine in ("torch", "numpy"):
        sampler = greedy_sampler(toy, engine=engine)
        got = []
        for _ in range(24):
            got.append(sampler.step().token_id)
            if sampler.done:
                break
        assert got == expected[: len(got)], engine


def test_same_seed_same_tokens_and_other_seed_differs(toy):
    def run(seed):
        sampler = Sampler(toy, SamplingConfig(temperature=1.0, seed=seed))
        sampler.set_prompt(PROMPT)
        return [ev.token_id for ev in sampler.run(30)]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_event_carries_plain_data_with_documented_shapes(toy):
    sampler = greedy_sampler(toy)
    ev = sampler.step()
    info = sampler.info
    T = len(sampler.tokens)
    assert ev.position == T - 1
    assert ev.attention.shape == (info.n_layer, info.n_head, T)
    assert isinstance(ev.attention, np.ndarray)
    np.testing.assert_allclose(ev.attention.sum(-1), 1.0, atol=1e-5)  # rows are distributions
    assert len(ev.lens) == info.n_layer and all(0 <= e.p <= 1 for e in ev.lens)
    assert ev.norms.shape == (info.n_layer + 1,) and ev.cosines.shape == (info.n_layer,)
    assert ev.candidates[0].token_id == ev.token_id  # greedy picks the most likely
    assert ev.candidates[0].p == 1.0
    p_raw = [c.p_raw for c in ev.candidates]
    assert p_raw == sorted(p_raw, reverse=True)
    for field in ("token_id", "position"):
        assert type(getattr(ev, field)) is int
    assert not any(isinstance(v, torch.Tensor) for v in vars(ev).values())


def test_lens_last_layer_is_the_model_prediction(toy):
    sampler = greedy_sampler(toy)
    sampler.step()
    next_token = sampler.preview(1)[0]
    assert sampler.last_lens[-1].token_id == next_token.token_id
    assert sampler.last_lens[-1].p == pytest.approx(next_token.p_raw, rel=1e-4)


def test_undo_then_step_repeats_the_greedy_token(toy):
    sampler = greedy_sampler(toy)
    first = [sampler.step().token_id for _ in range(3)]
    assert sampler.undo() == first[-1]
    assert sampler.tokens[-1] == first[1]
    assert sampler.step().token_id == first[-1]
    assert sampler.n_generated == 3


def test_undo_with_nothing_generated_returns_none(toy):
    sampler = greedy_sampler(toy)
    n_prompt = len(sampler.tokens)
    assert sampler.undo() is None
    assert len(sampler.tokens) == n_prompt


def test_on_chosen_hears_the_token_before_the_model_reads_it_in(toy):
    sampler = Sampler(toy, SamplingConfig(temperature=0.8, seed=3), engine="numpy")
    sampler.set_prompt(PROMPT)
    forward, calls, heard = sampler.backend.forward, [], []
    sampler.backend.forward = lambda ids: calls.append(ids) or forward(ids)
    events = [sampler.step(lambda *chosen: heard.append((*chosen, len(calls)))) for _ in range(3)]
    choice = sampler.preview()[2].token_id
    events.append(sampler.force(choice, lambda *chosen: heard.append((*chosen, len(calls)))))
    # the same token, text and p as its event, each heard before the forward pass that read it in
    assert heard == [(e.token_id, e.text, e.p_raw, i) for i, e in enumerate(events)]
    began = time.perf_counter()
    slow = sampler.step(lambda *chosen: time.sleep(0.05))  # a listener's time is not the engine's
    wall_ms = (time.perf_counter() - began) * 1e3
    assert slow.timings["total"] == pytest.approx(slow.timings["sample"] + slow.timings["forward"])
    assert slow.timings["total"] <= wall_ms - 50


def test_force_appends_exactly_the_chosen_token(toy):
    sampler = greedy_sampler(toy)
    choice = sampler.preview()[3].token_id
    ev = sampler.force(choice)
    assert ev.forced and ev.token_id == choice and sampler.tokens[-1] == choice
    with pytest.raises(ValueError, match="token id"):
        sampler.force(toy.info.vocab_size)


def test_event_carries_the_chosen_tokens_probabilities_even_outside_the_top_n(toy):
    sampler = Sampler(toy, SamplingConfig(temperature=1.0, top_k=5, seed=0), top_n=10)
    sampler.set_prompt(PROMPT)
    p_raw, p = sampler.next_distributions()  # [V], [V]
    sampled = sampler.step()
    assert sampled.p_raw == pytest.approx(float(p_raw[sampled.token_id])) and sampled.p == pytest.approx(float(p[sampled.token_id]))
    assert sampled.p > 0
    sampler.undo()
    rare = int(np.argsort(p_raw)[len(p_raw) // 2])  # far below the top 10 and outside top-k 5
    forced = sampler.force(rare)
    assert rare not in [c.token_id for c in forced.candidates]
    assert forced.p_raw == pytest.approx(float(p_raw[rare])) and forced.p_raw > 0 and forced.p == 0.0
    assert forced.to_json()["p_raw"] == round(forced.p_raw, 6)


def test_temperature_change_applies_to_the_next_token(toy):
    sampler = Sampler(toy, SamplingConfig(temperature=1.0, seed=0))
    sampler.set_prompt(PROMPT)
    hot = sampler.preview()
    sampler.set_config(temperature=0.3)
    cold = sampler.preview()
    assert [c.p_raw for c in hot] == [c.p_raw for c in cold]
    assert cold[0].p > hot[0].p  # a lower temperature sharpens the distribution
    assert hot[0].p == pytest.approx(hot[0].p_raw)
    ev = sampler.step()
    assert ev.config.temperature == 0.3
    assert ev.candidates[0].p == pytest.approx(cold[0].p)


def test_set_config_rejects_out_of_range_values(toy):
    sampler = greedy_sampler(toy)
    for change, name in [
        ({"temperature": -1}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"top_p": 0.0}, "top-p"),
        ({"top_k": -2}, "top-k"),
    ]:
        with pytest.raises(ValueError, match=name):
            sampler.set_config(**change)
    assert sampler.config.temperature == 0.0


@pytest.mark.parametrize("settings", SAMPLING_SETTINGS)
def test_draws_match_the_displayed_probabilities(toy, settings):
    """Step then undo: every draw comes from exactly the distribution shown before it. A generator
    seeded like the sampler's, drawing with `sample` from the shown [V] `after` array, picks the same
    token each time (an off-by-one or any other difference would pick others); the candidates and the
    event show that array's p; and the draws' frequencies follow it (χ²). The sampler decodes only its
    top candidates (`sample` itself is χ²-tested on many draws in test_sampling.py)."""
    seed, n_draws = 1234, 400
    sampler = Sampler(toy, SamplingConfig(seed=seed, **settings))
    sampler.set_prompt("Once upon a time, a little")
    replica = np.random.default_rng(seed)
    first_shown = sampler.next_distributions()[1]
    draws = []
    for _ in range(n_draws):
        p_raw, shown = sampler.next_distributions()
        for c in sampler.preview():
            assert (c.p_raw, c.p) == (p_raw[c.token_id], shown[c.token_id])
        expected = sample(shown, replica)
        ev = sampler.step()
        assert ev.token_id == expected
        assert (ev.p_raw, ev.p) == (p_raw[ev.token_id], shown[ev.token_id])
        assert {c.token_id: c.p for c in ev.candidates} == {c.token_id: float(shown[c.token_id]) for c in ev.candidates}
        draws.append(ev.token_id)
        sampler.undo()
    np.testing.assert_allclose(sampler.next_distributions()[1], first_shown, atol=1e-6)  # undo restores the distribution
    chi2, dof = chi2_of_draws(draws, first_shown)
    assert chi2 < chi2_critical(dof), (chi2, dof)


def test_a_sampler_drawing_from_another_distribution_than_it_shows_is_caught(toy, monkeypatch):
    """The check above can fail: a sampler drawing one id off from what it shows does not pass it."""
    import engine.runtime.sampler as sampler_module

    monkeypatch.setattr(sampler_module, "sample", lambda p, rng: (sample(p, rng) + 1) % len(p))
    with pytest.raises(AssertionError):
        test_draws_match_the_displayed_probabilities(toy, SAMPLING_SETTINGS[0])


def test_top_k_support_is_respected(toy):
    sampler = Sampler(toy, SamplingConfig(temperature=2.0, top_k=3, seed=0), top_n=toy.info.vocab_size)
    sampler.set_prompt(PROMPT)
    allowed = {c.token_id for c in sampler.preview() if c.p > 0}
    assert len(allowed) == 3
    for _ in range(100):
        assert sampler.step().token_id in allowed
        sampler.undo()


def test_window_slides_at_n_positions_and_says_so(toy):
    sampler = Sampler(toy, SamplingConfig(temperature=1.0, seed=0))
    n_positions = toy.info.n_positions
    sampler.set_prompt(PROMPT + " the" * (n_positions + 40))  # longer than the context
    assert sampler.prompt_dropped > 0
    assert len(sampler.tokens) == n_positions - 1
    slid = []
    for _ in range(3):
        sampler.done = False  # keep going past an end-of-text for this test
        slid.append(sampler.step())
    assert slid[0].slid is False and slid[1].slid is True and slid[1].dropped > 0
    assert len(sampler.tokens) <= n_positions
    assert sampler.attention_matrix().shape[-1] == len(sampler.tokens)


def test_kv_cache_matches_a_full_recompute(toy):
    sampler = Sampler(toy, SamplingConfig(temperature=0.9, seed=5))
    sampler.set_prompt(PROMPT)
    for _ in range(10):
        sampler.step()
    with torch.no_grad():
        full = toy.hf_model(torch.tensor([sampler.tokens])).logits[0, -1].numpy()
    np.testing.assert_allclose(sampler._next_logits, full, atol=1e-4)


def test_step_after_end_of_text_raises_until_undo(toy):
    sampler = greedy_sampler(toy)
    sampler.force(toy.tokenizer.eos_token_id)
    assert sampler.done
    with pytest.raises(GenerationDone):
        sampler.step()
    sampler.undo()
    assert not sampler.done and sampler.step().token_id >= 0


def test_streamed_pieces_concatenate_to_the_decoded_text(toy):
    sampler = Sampler(toy, SamplingConfig(temperature=1.0, seed=2))
    sampler.set_prompt("Ünïcödé → 🙂 ")
    for _ in range(20):
        sampler.step()
    assert "".join(sampler.pieces) == toy.tokenizer.decode(sampler.tokens)
    assert "\ufffd" not in "".join(sampler.pieces[: sampler.prompt_len])


def test_numpy_engine_matches_torch_engine_events(toy):
    a, b = greedy_sampler(toy, "torch"), greedy_sampler(toy, "numpy")
    for _ in range(5):
        ea, eb = a.step(), b.step()
        assert ea.token_id == eb.token_id
        np.testing.assert_allclose(ea.attention, eb.attention, atol=1e-4)
        np.testing.assert_allclose(ea.norms, eb.norms, rtol=1e-4)
        assert [e.token_id for e in ea.lens] == [e.token_id for e in eb.lens]


def test_two_samplers_on_one_model_in_two_threads_do_not_interfere(toy):
    import threading

    solo = greedy_sampler(toy)
    expected = [solo.step().token_id for _ in range(30)]
    results, errors = {}, []

    def run(name):
        try:
            sampler = greedy_sampler(toy)
            results[name] = [sampler.step().token_id for _ in range(30)]
        except Exception as error:  # surfaced by the assert below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(name,)) for name in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and results == {"a": expected, "b": expected}


class CountingTokenizer:
    """The toy tokenizer, counting how often each id is decoded on its own (as candidates and lens entries are)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.single_decodes: dict[int, int] = {}

    def decode(self, ids, **options):
        if len(ids) == 1 and not options:
            self.single_decodes[ids[0]] = self.single_decodes.get(ids[0], 0) + 1
        return self.tokenizer.decode(ids, **options)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


def test_candidate_and_lens_texts_are_decoded_once_per_id(toy):
    counting = CountingTokenizer(toy.tokenizer)
    sampler = Sampler(dataclasses.replace(toy, tokenizer=counting), SamplingConfig(temperature=1.0, seed=0))
    sampler.set_prompt(PROMPT)
    events = [sampler.step() for _ in range(20)]
    shown = [(c.token_id, c.text) for ev in events for c in ev.candidates] + [(e.token_id, e.text) for ev in events for e in ev.lens]
    assert len(shown) > len(counting.single_decodes) > 0  # ids repeat from step to step...
    assert all(n == 1 for n in counting.single_decodes.values())  # ...and each was decoded once
    assert all(text == toy.tokenizer.decode([token_id]) for token_id, text in shown)  # the same text as before


@pytest.mark.parametrize("engine", ["torch", "numpy"])
def test_position_is_the_index_in_the_full_sequence_across_slides(short_context_toy, engine):
    """TokenEvent.position counts the tokens the window dropped (a too-long prompt's start, each slide)."""
    sampler = Sampler(short_context_toy, SamplingConfig(temperature=0.0), engine=engine)
    the = short_context_toy.tokenizer.encode(" the")[0]
    for prompt in (PROMPT, PROMPT + " the" * 40):  # fits; longer than the 24-token context
        sampler.set_prompt(prompt)
        n_prompt = len(short_context_toy.tokenizer.encode(prompt))
        events = [sampler.force(the) for _ in range(40)]  # forced: no end-of-text stops it
        assert sum(ev.slid for ev in events) >= 2
        assert [ev.position for ev in events] == list(range(n_prompt, n_prompt + 40))
        assert sampler.last_position == n_prompt + 39
        sampler.undo()  # undo after a slide: the next token takes the undone one's place
        assert sampler.force(the).position == n_prompt + 39


def test_prediction_before_a_prompt_token_reads_only_the_tokens_before_it_and_leaves_the_cache_alone(toy):
    sampler = Sampler(toy, SamplingConfig(temperature=0.0), engine="numpy")
    sampler.set_prompt(DEFAULT_PROMPT)
    ids = list(sampler.tokens)
    live = sampler.preview()
    step = sampler.prediction_before(2)
    logits, _ = sampler.backend.net.forward(ids[:2])  # [2, V]
    assert step.candidates[0].token_id == int(np.argmax(logits[-1]))
    assert step.config is None and len(step.lens) == toy.info.n_layer and step.norms.shape == (toy.info.n_layer + 1,)
    assert step.lens[-1].token_id == step.candidates[0].token_id  # the last layer's lens is the prediction
    assert sampler.preview() == live and sampler.step().token_id == live[0].token_id  # the live context is untouched
    with pytest.raises(ValueError, match="position must be in"):
        sampler.prediction_before(0)


@pytest.mark.parametrize("engine", ["torch", "numpy"])
def test_an_undo_right_after_a_slide_keeps_the_last_positions_lens_norms_and_cosines(short_context_toy, engine):
    """After a slide the window is re-read and only its last position has lens, norms and cosines; an undo
    (and a branch, which undoes back to an earlier token) must give the new last position its own again."""
    sampler = Sampler(short_context_toy, SamplingConfig(temperature=0.0), engine=engine)
    the = short_context_toy.tokenizer.encode(" the")[0]
    sampler.set_prompt(PROMPT)
    while not sampler.force(the).slid:
        pass
    for _ in range(3):  # the last undo reaches a token that was read in before the slide
        sampler.undo()
        fresh = Sampler(short_context_toy, SamplingConfig(temperature=0.0), engine=engine)
        fresh._prefill(list(sampler.tokens))  # the same window read from scratch: its last position's view
        assert [(e.token_id, round(e.p, 4)) for e in sampler.last_lens] == [(e.token_id, round(e.p, 4)) for e in fresh.last_lens]
        assert len(sampler.last_lens) == short_context_toy.info.n_layer
        np.testing.assert_allclose(sampler.last_norms, fresh.last_norms, rtol=1e-4)
        np.testing.assert_allclose(sampler.last_cosines, fresh.last_cosines, rtol=1e-4, atol=1e-5)


def test_time_travel_keeps_compact_rows_within_float16s_rounding_and_below_what_screens_show(toy):
    from engine.model.head_stats import head_stats
    from engine.runtime.sampler import ATTENTION_BUDGET, session_window

    sampler = Sampler(toy, SamplingConfig(temperature=0.0), engine="numpy")
    sampler.set_prompt(DEFAULT_PROMPT * 12)
    events = [sampler.step() for _ in range(8)]
    assert len(sampler.tokens) >= 64
    net = toy.numpy_model()
    _, captures = net.forward(sampler.tokens)  # float32, the whole context at once
    exact = np.stack([captures[f"blocks.{i}.attn.hook_pattern"] for i in range(net.n_layer)])  # [L, H, T, T]
    for i, view in enumerate(sampler.views):
        assert view.rows.dtype == np.float16 and view.rows.base is None  # its own copy: a forward's capture is not kept alive
        assert view.attention.dtype == np.float32
        assert np.abs(view.attention - exact[:, :, i, : i + 1]).max() <= 2**-12 + 1e-6  # float16's rounding of [0, 1]
    for event in events:  # a live step hands out its row in float32, exact, as documented
        assert event.attention.dtype == np.float32
        np.testing.assert_allclose(event.attention, exact[:, :, event.position, : event.position + 1], atol=1e-6)
    kept, ids = sampler.attention_matrix(), sampler.tokens
    assert kept.dtype == np.float32
    for name, values in head_stats(kept, ids).items():  # the heads screen shows two decimals
        assert np.abs(values - head_stats(exact, ids)[name]).max() < 0.005, name
    window = session_window(8192, 30, 9)  # SmolLM2-135M's shape: float16 rows fit 1,409 tokens in the budget
    assert window == 1409 and 30 * 9 * window * (window + 1) / 2 * 2 <= ATTENTION_BUDGET < 30 * 9 * (window + 1) * (window + 2) / 2 * 2


def test_nothing_a_session_keeps_holds_on_to_a_forwards_attention_capture(toy):
    import gc
    import weakref

    sampler = Sampler(toy, engine="numpy")
    captured = []
    forward = sampler.backend.forward

    def recording(ids):
        out = forward(ids)
        captured.append(weakref.ref(out.attention))  # [L, H, T_new, T]: a full window's prefill is L H T^2 float32s
        return out

    sampler.backend.forward = recording
    sampler.set_prompt(DEFAULT_PROMPT)
    sampler.step()
    gc.collect()
    assert len(captured) == 2 and all(ref() is None for ref in captured)  # the rows were copied out; the lens keeps the residuals only
    assert [entry.token_id for entry in sampler.last_lens] and sampler.views[-1].rows.base is None
