"""The lessons on the models people use: GPT-2's block against the modern one in the lab, and a real model's heads.
Every figure their texts quote is measured again here, with tfund's own engine."""

from dataclasses import replace

import numpy as np
import pytest

from engine.model.blocklab import kv_cache_bytes
from engine.model.head_stats import head_stats, uniform_stats
from tests.tui.conftest import require_smollm2, settle, wait_until
from tests.tui.test_tui_fit import SMALL, toy_app
from tests.tui.test_tui_lessons import lesson_shown, observation
from tui.lessons import GPT2_LAB, HEADS_PROMPT, LESSONS, gpt2_block_of
from tui.numbering import head_label
from tui.screens.main import MainScreen

MODERN = next(i for i, lesson in enumerate(LESSONS) if lesson.title == "GPT-2's block vs the modern block")
HEADS = next(i for i, lesson in enumerate(LESSONS) if lesson.title == "A real model's heads")


def all_heads(model, text: str):  # -> {statistic: [L, H]}, {statistic: uniform's}, [T] ids
    ids = model.tokenizer.encode(text, add_special_tokens=False)
    net = model.numpy_model()
    _, captures = net.forward(ids)
    pattern = np.stack([captures[f"blocks.{i}.attn.hook_pattern"] for i in range(net.n_layer)])  # [L, H, T, T]
    return head_stats(pattern, ids), uniform_stats(ids), ids


def best(values) -> tuple[str, float]:
    at = np.unravel_index(np.nanargmax(values), values.shape)
    return head_label(*at), float(values[at])


def test_the_modern_block_lesson_starts_from_gpt2s_block_and_quotes_the_labs_and_smollm2s_sizes(smollm2):
    lesson = LESSONS[MODERN]
    assert gpt2_block_of(GPT2_LAB) == GPT2_LAB == lesson.lab
    assert f"{kv_cache_bytes(GPT2_LAB)} → {kv_cache_bytes(replace(GPT2_LAB, n_kv_heads=2))} B/token" in lesson.why
    arch = smollm2.numpy_model().arch
    assert f"SmolLM2 has {arch.n_kv_heads} for its {arch.n_heads} heads" in lesson.why
    per_token, full = 2 * arch.n_layers * arch.n_kv_heads * arch.d_head, 2 * arch.n_layers * arch.n_heads * arch.d_head
    assert f"({per_token:,} numbers a token, not {full:,})" in lesson.why
    assert f"SmolLM2: {arch.d_ff:,} for {arch.d_model}" in lesson.why and abs(arch.d_ff / arch.d_model - 8 / 3) < 0.01


@pytest.mark.anyio
async def test_the_modern_block_lesson_observes_each_part_against_gpt2s(toy):
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("G", *[")"] * MODERN)
        await lesson_shown(pilot, MODERN)
        await wait_until(pilot, lambda: observation(app).startswith("GPT-2's block (now): KV cache 512 B/token"), "GPT-2's block")
        for key, part in [("O", "RMSNorm"), ("U", "RMSNorm + RoPE"), ("y", "RMSNorm + RoPE + SwiGLU")]:  # learned → RoPE, GELU → SwiGLU
            await pilot.press(key)
            await wait_until(pilot, lambda p=part: observation(app).startswith(f"{p} (now): KV cache 512 B/token (GPT-2's 512)"), part)
        await pilot.press("H")
        part = "RMSNorm + RoPE + SwiGLU + 2 KV heads (now): KV cache 256 B/token (GPT-2's 512)"
        await wait_until(pilot, lambda: observation(app).startswith(part), "the modern block")
        assert "RoPE: q·k at distance 0–3:" in str(app.screen.query_one("#lab-modern").render())


def test_the_heads_lessons_figures_are_smollm2s_and_the_toys_on_its_prompt(smollm2, toy):
    why = LESSONS[HEADS].why
    stats, uniform, ids = all_heads(smollm2, HEADS_PROMPT)
    n_layers, n_heads = stats["sink"].shape
    sinks = int((stats["sink"] > 0.5).sum())
    assert (
        f"this prompt ({len(ids)} tokens)" in why
        and f"{sinks} of {n_layers * n_heads} heads sinks ({sinks / stats['sink'].size:.0%})" in why
    )
    prev, ind = best(stats["prev_token"]), best(stats["induction"])
    assert f"{prev[0]} reads the previous token (prev {prev[1]:.2f})" in why and f"{ind[0]} is an induction head (ind {ind[1]:.2f})" in why
    assert f"Uniform attention scores {uniform['prev_token']:.2f} and {uniform['induction']:.2f}" in why
    toy_stats, toy_uniform, _ = all_heads(toy, HEADS_PROMPT)
    assert (toy_stats["sink"] <= 0.5).all() and f"The toy's {toy_stats['sink'].size} heads stay diffuse: no sink" in why
    assert f"prev ≤ {toy_stats['prev_token'].max():.2f}, ind ≤ {np.nanmax(toy_stats['induction']):.2f}" in why
    assert f"(uniform {toy_uniform['prev_token']:.2f}, {toy_uniform['induction']:.2f})" in why


@pytest.mark.anyio
@pytest.mark.parametrize("fetched", [True, False])
async def test_the_heads_lesson_sets_its_prompt_and_on_the_toy_says_how_to_see_a_real_models(toy, tmp_path, monkeypatch, fetched):
    if not fetched:
        monkeypatch.setenv("TFUND_CACHE", str(tmp_path / "empty-cache"))
    else:
        require_smollm2()
    app = toy_app(toy)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("G", *[")"] * HEADS)
        await lesson_shown(pilot, HEADS)
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen) and "58 tokens" in observation(app), "the lesson's prompt")
        assert app.session.prompt == HEADS_PROMPT
        stats, uniform, ids = all_heads(toy, HEADS_PROMPT)
        prev, ind = best(stats["prev_token"]), best(stats["induction"])
        now = observation(app).replace("\n", " ")
        assert now.startswith(
            f"toy, {len(ids)} tokens: 0 of 36 heads sinks (>½ on token 0) · best prev {prev[0]} {prev[1]:.2f}, ind {ind[0]}"
        )
        assert f"(uniform {uniform['prev_token']:.2f}, {uniform['induction']:.2f})" in now
        assert now.endswith("SmolLM2's: tfund-tui --model smollm2" if fetched else "a real model's: tfund fetch smollm2")


@pytest.mark.anyio
async def test_on_smollm2_the_heads_lesson_shows_the_sinks_and_the_induction_head(smollm2):
    app = toy_app(smollm2)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("G", *[")"] * HEADS)
        await lesson_shown(pilot, HEADS)
        await wait_until(pilot, lambda: "23 tokens" in observation(app), "the lesson's prompt on SmolLM2")
        stats, _, _ = all_heads(smollm2, HEADS_PROMPT)
        ind = best(stats["induction"])
        now = observation(app).replace("\n", " ")
        assert f"{int((stats['sink'] > 0.5).sum())} of 270 heads sinks" in now and f"ind {ind[0]} {ind[1]:.2f}" in now
        assert "tfund" not in now  # the real model is loaded: no hint
