"""The sampler on any family: the start token of an empty prompt, every end-of-text id, the session's
window, the ablated model's own KV cache, and a NumPy session that never imports torch."""

import json
import subprocess
import sys

import numpy as np
import pytest

from engine.events import SamplingConfig
from engine.model.interventions import parse_ablation, run_numpy
from engine.runtime.loading import load_model
from engine.runtime.sampler import ATTENTION_BUDGET, Sampler, session_window
from tests.conftest import random_llama_dir

PROMPT = "In a small village, there lived an old man who"


def test_an_empty_prompt_starts_from_the_start_token_and_gpt2_from_end_of_text(tmp_path, toy_tokenizer):
    toy = Sampler(load_model("toy", device="cpu"))
    toy.set_prompt("")
    assert toy.tokens == [toy_tokenizer.eos_token_id]  # GPT-2: <|endoftext|>
    path = tmp_path / "llama"
    random_llama_dir(path, toy_tokenizer, seed=1)
    settings = json.loads((path / "tokenizer_config.json").read_text())
    start = toy_tokenizer.convert_ids_to_tokens(100)
    (path / "tokenizer_config.json").write_text(json.dumps({**settings, "bos_token": start}))  # a start token of its own
    for engine in ("numpy", "torch"):
        model = load_model(str(path), device="cpu", engine=engine)
        sampler = Sampler(model)
        sampler.set_prompt("")
        assert sampler.tokens == [100] != [toy_tokenizer.eos_token_id]


def test_generation_stops_at_any_end_of_text_id(tmp_path, toy_tokenizer):
    path = tmp_path / "llama"
    random_llama_dir(path, toy_tokenizer, seed=1)
    (path / "generation_config.json").write_text(json.dumps({"eos_token_id": [toy_tokenizer.eos_token_id, 42]}))
    model = load_model(str(path), device="cpu")
    assert model.eos_ids == (toy_tokenizer.eos_token_id, 42)
    sampler = Sampler(model)
    sampler.set_prompt(PROMPT)
    assert not sampler.force(41).eos and sampler.force(42).eos and sampler.done


def test_the_window_keeps_captured_attention_within_the_budget():
    assert session_window(1024, 12, 12) == 1024  # GPT-2 small keeps its whole context
    window = session_window(8192, 30, 9)  # SmolLM2-135M's shape
    assert window < 8192 and 30 * 9 * window * (window + 1) / 2 * 2 <= ATTENTION_BUDGET < 30 * 9 * (window + 2) ** 2 / 2 * 2  # float16 rows


def test_the_kv_cache_is_sized_by_the_window_and_kv_heads(llama_dir):
    sampler = Sampler(load_model(llama_dir, device="cpu", engine="numpy"))
    assert sampler.backend.cache.k.shape == (2, 2, sampler.n_positions, 16)  # [L, H_kv, window, d_head]


def test_an_ablated_generation_keeps_its_own_kv_cache(llama_dir):
    model = load_model(llama_dir, device="cpu", engine="numpy")
    sampler = Sampler(model, SamplingConfig(temperature=0.0))
    sampler.set_prompt(PROMPT)
    ablations = [parse_ablation("1.2"), parse_ablation("0.mlp")]
    sampler.set_ablations(ablations)
    for step in range(6):
        event = sampler.step()
        decoder = sampler._ablated_decoder
        expected = run_numpy(model.numpy_model(), sampler.tokens[:-1], ablations).logits  # the whole context again
        assert event.token_id == int(np.argmax(expected))
        assert len(decoder.cache) == len(sampler.tokens) - 1  # filled once, then one token a step
        if step == 3:
            sampler.undo()
    sampler.preview()  # the next token's ablated logits, read through the cache
    np.testing.assert_allclose(sampler._ablated[0], run_numpy(model.numpy_model(), sampler.tokens, ablations).logits, atol=1e-4)


@pytest.mark.parametrize("engine", ["numpy", "torch"])
@pytest.mark.parametrize("which", ["toy", "gqa"])
def test_cached_zero_ablated_generation_equals_reading_the_whole_context_again(engine, which, toy_tokenizer, tmp_path):
    from engine.runtime.interventions import AblatedDecoder, TorchAblatedDecoder, run_torch

    path = "toy" if which == "toy" else random_llama_dir(tmp_path / "llama", toy_tokenizer, seed=5)  # 4 query / 2 KV heads
    model = load_model(path, device="cpu", engine=engine)
    sampler = Sampler(model, SamplingConfig(temperature=0.0))
    sampler.set_prompt(PROMPT)
    ablations = [parse_ablation("1.1"), parse_ablation("0.attn"), parse_ablation("1.mlp")]
    sampler.set_ablations(ablations)

    def full_rerun(tokens):  # the whole context read again
        if engine == "numpy":
            return run_numpy(model.numpy_model(), tokens, ablations)
        return run_torch(model.hf_model, tokens, ablations)

    for step in range(6):
        sampler.preview()  # the ablated logits for the next token, through the ablated cache
        cached, resid = sampler._ablated  # [V], [L + 1, d]
        again = full_rerun(sampler.tokens)
        np.testing.assert_allclose(cached, again.logits, atol=1e-5, rtol=0)
        np.testing.assert_allclose(resid, again.resid, atol=1e-4, rtol=1e-5)  # what the Layers pane draws under the ablation
        event = sampler.step()
        assert event.token_id == int(np.argmax(cached))
        if step == 3:
            sampler.undo()
    decoder = sampler._ablated_decoder
    assert isinstance(decoder, AblatedDecoder if engine == "numpy" else TorchAblatedDecoder)
    assert decoder.tokens == sampler.tokens[:-1]  # filled once, then a token at a time (an undo rolled it back)
    assert (len(decoder.cache) if engine == "numpy" else decoder.cache.get_seq_length()) == len(sampler.tokens) - 1
    sampler.set_ablations(ablations, mode="mean")  # a context mean moves every position: the whole context again
    sampler.preview()
    assert sampler._ablated_decoder is None
    with pytest.raises(ValueError, match="run it without a cache"):
        run_torch(load_model("toy", device="cpu", engine="torch").hf_model, [1, 2], ablations, "mean", cache=object())


@pytest.mark.parametrize("which", ["toy", "gqa"])
def test_mean_ablated_generation_keeps_the_blocks_below_and_equals_reading_the_whole_context_again(which, toy_tokenizer, tmp_path):
    from engine.runtime.interventions import MeanAblatedDecoder

    path = "toy" if which == "toy" else random_llama_dir(tmp_path / "llama", toy_tokenizer, seed=5)  # 4 query / 2 KV heads
    model = load_model(path, device="cpu", engine="numpy")
    sampler = Sampler(model, SamplingConfig(temperature=0.0))
    sampler.set_prompt(PROMPT)
    ablations = [parse_ablation("1.1"), parse_ablation("1.mlp")]
    sampler.set_ablations(ablations, mode="mean")
    for step in range(6):
        sampler.preview()
        cached, resid = sampler._ablated  # [V], [L + 1, d]
        again = run_numpy(model.numpy_model(), sampler.tokens, ablations, "mean")
        np.testing.assert_allclose(cached, again.logits, atol=1e-5, rtol=0)
        np.testing.assert_allclose(resid, again.resid, atol=1e-4, rtol=1e-5)  # the blocks below from the cache, the rest again
        assert sampler.step().token_id == int(np.argmax(cached))
        if step == 3:
            sampler.undo()
    decoder = sampler._ablated_decoder
    assert isinstance(decoder, MeanAblatedDecoder) and decoder.first == 1
    assert len(decoder.cache) == len(decoder.tokens) == len(sampler.tokens) - 1 == len(decoder.resid)  # block 0 advanced a token a step
    assert decoder.cache.k.shape[0] == 1  # only the blocks below the lowest ablated one are kept


def test_a_numpy_session_never_imports_torch_attribution_and_ablation_included(llama_dir):
    code = (
        "import sys\n"
        "from engine import load_model, Sampler, SamplingConfig\n"
        "from engine.model.interventions import parse_ablation\n"
        "from engine.runtime.interventions import Inspector\n"
        f"model = load_model({llama_dir!r}, engine='numpy')\n"
        "s = Sampler(model, SamplingConfig(temperature=0.0))\n"
        "s.set_prompt('In a small village,')\n"
        "s.set_ablations([parse_ablation('0.1')])\n"
        "[s.step() for _ in range(3)]\n"
        "inspector = Inspector(model)\n"
        "run = inspector.run(s.tokens, [parse_ablation('1.attn')])\n"
        "attribution = inspector.attribution(run, 5)\n"
        "assert abs(attribution.total() - attribution.logit) < 1e-3\n"
        "print(inspector.engine, sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["numpy", "[]"]


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_a_llama_window_slides_and_goes_on(tmp_path, toy_tokenizer, engine):
    path = tmp_path / "short"
    random_llama_dir(path, toy_tokenizer, seed=2, max_position_embeddings=24)
    sampler = Sampler(load_model(str(path), device="cpu", engine=engine), SamplingConfig(temperature=0.0))
    sampler.set_prompt(PROMPT)
    events = [sampler.step() for _ in range(30)]
    assert any(e.slid for e in events) and len(sampler.tokens) <= 24 and sampler.n_generated == 30


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_the_logit_lens_is_computed_only_for_the_steps_that_are_read(llama_dir, engine, monkeypatch):
    sampler = Sampler(load_model(llama_dir, device="cpu", engine=engine), SamplingConfig(temperature=0.0))
    calls = []
    real = sampler.backend.lens_top
    monkeypatch.setattr(sampler.backend, "lens_top", lambda resid: calls.append(1) or real(resid))
    sampler.set_prompt(PROMPT)
    events = list(sampler.run(8))
    assert calls == []  # a run of 8 steps computed no lens
    shown = events[4].lens  # the step on screen
    assert len(shown) == 2 and len(calls) == 1 and len(events[4].lens) == 2 and len(calls) == 1  # once, then kept
    eager = sampler.prediction_before(sampler.prompt_len + 5).lens  # the same position, read again from scratch
    assert [e.token_id for e in shown] == [e.token_id for e in eager]
    np.testing.assert_allclose([e.p for e in shown], [e.p for e in eager], atol=1e-5)
