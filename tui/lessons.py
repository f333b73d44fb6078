"""Guided lessons that follow the seed notebook (Transformer Fundamentals 06): anatomy, masking,
residuals, layer norm, stacking, the generation loop, sampling, comparing, tokenization, reflection.

Each lesson names the screen it happens on and the state it starts from, asks the learner to do one
thing with keys, and observes the live state: `observe(app)` is one line computed from the session's
public state (`app.session`) and what the shown screen publishes for lessons (`lesson_facts()`, named
by its `LESSON_NAME`), and, in the block lab, from the same block with the switch flipped. Lessons
import no screen: the app opens a lesson's screen by name (`app.open_screen`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import astuple, dataclass, replace
from typing import Any

import numpy as np

from engine.model.blocklab import BlockLabConfig, BlockLabResult, lab_number, run_block_lab
from engine.views.tokenization import EXAMPLES, tokenize
from tui.captions import settings_phrase
from tui.pieces import label_text

DEEP_LAB = BlockLabConfig(n_layers=6)  # the notebook's block, stacked six deep


@dataclass(frozen=True)
class Lesson:
    title: str
    text: str  # what to notice, in a sentence or two
    task: str  # the one thing to do, with keys
    screen: str | None  # the screen it happens on, as tui.app.TfundApp.open_screen names it (None: the main screen)
    observe: Callable[[Any], str]  # app -> one line computed from the current state
    lab: BlockLabConfig | None = None  # the block lab's starting settings


# ---- the block lab: the current result, and the same block with one switch flipped -----------------
_lab_runs: dict[tuple, BlockLabResult] = {}


def lab_run(config: BlockLabConfig) -> BlockLabResult:
    """run_block_lab, remembered: a lesson compares the block with and without a switch at every refresh."""
    key = astuple(config)
    if key not in _lab_runs:
        if len(_lab_runs) > 64:
            _lab_runs.clear()
        _lab_runs[key] = run_block_lab(replace(config))
    return _lab_runs[key]


def shown_facts(app: Any, name: str) -> dict | None:
    """What the shown screen publishes for lessons (its `lesson_facts()`) if it is the one named, else None."""
    screen = app.screen
    return screen.lesson_facts() if getattr(screen, "LESSON_NAME", None) == name else None


def lab_config(app: Any) -> BlockLabConfig | None:
    facts = shown_facts(app, "block_lab")
    return None if facts is None else facts["config"]


LAB_MISSING = "Open the block lab (b) to see this change."


def observe_anatomy(app: Any) -> str:
    config = lab_config(app)
    if config is None:
        return LAB_MISSING
    metrics = lab_run(config).metrics
    norms, token_cos = metrics["resid_norm"], metrics["token_cosine"]
    return (
        f"{config.n_layers} block{'s' if config.n_layers > 1 else ''}: residual norm {lab_number(norms[0])} → {lab_number(norms[-1])}, "
        f"token cosine {lab_number(token_cos[0])} → {lab_number(token_cos[-1])} (input → after block {config.n_layers})"
    )


def future_attention(result: BlockLabResult) -> float:  # the mean weight a token gives to tokens after it
    attention = result.attention  # [L, H, T, T]
    return float(np.triu(attention, 1).sum(axis=-1).mean())


def observe_masking(app: Any) -> str:
    config = lab_config(app)
    if config is None:
        return LAB_MISSING
    now, flipped = lab_run(config), lab_run(replace(config, causal=not config.causal))
    state = "on" if config.causal else "off"
    other = "off" if config.causal else "on"
    return (
        f"mask {state} (now): attention to later tokens {lab_number(future_attention(now))}, token 0 on itself "
        f"{lab_number(now.attention[..., 0, 0].mean())} — mask {other}: {lab_number(future_attention(flipped))}, "
        f"{lab_number(flipped.attention[..., 0, 0].mean())}"
    )


def flip_observation(app: Any, switch: str, metric: str, name: Callable[[BlockLabConfig], str]) -> str:
    """The metric after the last block, now and with `switch` flipped."""
    config = lab_config(app)
    if config is None:
        return LAB_MISSING
    flipped = replace(config, **{switch: not getattr(config, switch)})
    now, other = lab_run(config).metrics[metric][-1], lab_run(flipped).metrics[metric][-1]
    what = "token cosine" if metric == "token_cosine" else "residual norm"
    return f"{what} after block {config.n_layers}: {lab_number(now)} with {name(config)} (now) — {lab_number(other)} with {name(flipped)}"


def observe_residual(app: Any) -> str:
    return flip_observation(app, "residual", "token_cosine", lambda c: f"residual {'on' if c.residual else 'off'}")


def observe_layer_norm(app: Any) -> str:
    return flip_observation(app, "layer_norm", "resid_norm", lambda c: f"layer norm {'on' if c.layer_norm else 'off'}")


def observe_pre_post(app: Any) -> str:
    config = lab_config(app)
    if config is not None and not config.layer_norm:
        return "The layer norm is off, so pre- and post-LN are the same block: N turns it on."
    return flip_observation(app, "pre_ln", "resid_norm", lambda c: "pre-LN" if c.pre_ln else "post-LN")


# ---- the main screen ---------------------------------------------------------------------------------
def observe_lens(app: Any) -> str:
    lens = app.session.transcript.lens
    if not lens:
        return "Waiting for the model…"
    final = lens[-1].token_id
    settled = len(lens)  # the first block from which every lens row agrees with the final guess (1-based)
    while settled > 1 and lens[settled - 2].token_id == final:
        settled -= 1
    earlier = ", ".join(label_text(e.text, 10) for e in lens[: settled - 1]) or "nothing else"
    return f"the lens settles on '{label_text(lens[-1].text, 12)}' after block {settled} of {len(lens)}; before that it guessed: {earlier}"


def observe_generation_loop(app: Any) -> str:
    session = app.session
    if session.model_info is None:
        return "Waiting for the model…"
    n_tokens, info = len(session.transcript.positions), session.model_info
    step = session.transcript.last_ms
    took = "no token generated yet" if step is None else f"{session.transcript.n_generated} generated, the last in {step:.1f} ms"
    return (
        f"context {n_tokens} tokens · {took} · the KV cache keeps {n_tokens} keys and values in each of "
        f"{info.n_layer}×{info.n_head} heads, so a step reads 1 new token, not {n_tokens}"
    )


def observe_sampling(app: Any) -> str:
    session = app.session
    candidates = session.transcript.candidates
    if not candidates:
        return "Waiting for the model…"
    config = session.transcript.candidates_config or session.settings
    top = candidates[0]
    kept = sum(c.p > 0 for c in candidates)
    return (
        f"{settings_phrase(config)}: the top candidate has {top.p:.0%} after warping ({top.p_raw:.0%} before); "
        f"{kept} of the top {len(candidates)} can still be drawn"
    )


def observe_compare(app: Any) -> str:
    facts = shown_facts(app, "compare")
    if facts is None:
        return "Open compare (c) to see this."
    (a, b), steps = facts["temperatures"], facts["steps"]
    if not steps:
        return f"A at T {a:.2f}, B at T {b:.2f}: no step yet (n steps both)"
    agree = sum(step.top1_agree for step in steps)
    return (
        f"A at T {a:.2f}, B at T {b:.2f}: step {len(steps)} KL(A‖B) {steps[-1].kl:.3f} nats · top-1 agrees in {agree} of {len(steps)} steps"
    )


_english: dict[str, float] = {}  # tokenizer source name -> its characters per token on the English example


def observe_tokenization(app: Any) -> str:
    facts = shown_facts(app, "tokenize")
    if facts is None or facts["tokenization"] is None:
        return "Open tokenization (w) to see this."
    shown, source = facts["tokenization"], facts["source"]
    if source not in _english:
        _english[source] = tokenize(facts["tokenizer"], EXAMPLES[0].text).chars_per_token
    return (
        f"this sentence: {shown.n_chars} characters in {shown.n_tokens} tokens = {shown.chars_per_token:.1f} "
        f"per token · the English example: {_english[source]:.1f}"
    )


def observe_reflection(app: Any) -> str:
    saved = app.figures_saved
    where = app.session.options.export_dir
    return f"figures saved this session: {saved} files in {where}" if saved else f"nothing saved yet: e writes this screen into {where}"


LESSONS = (
    Lesson(
        "The block's anatomy",
        "One block: layer norm → causal attention → add back (residual) → layer norm → feed-forward → add back. "
        "Here: the notebook's block on its random X, bit for bit.",
        "l / L: one block fewer or more; watch the Representations pane",
        "block_lab",
        observe_anatomy,
        lab=BlockLabConfig(),
    ),
    Lesson(
        "Causal masking",
        "A decoder may not look ahead: the mask zeroes the attention to later tokens, so the map is a triangle. "
        "An encoder (BERT) has no mask.",
        "u: switch the causal mask off, and on again",
        "block_lab",
        observe_masking,
        lab=BlockLabConfig(),
    ),
    Lesson(
        "Residual connections",
        "Each sublayer adds its output to its input (x + f(x)). Without that, every block rewrites the tokens, "
        "and deep down they all look alike.",
        "R: switch the residual connections off and on",
        "block_lab",
        observe_residual,
        lab=DEEP_LAB,
    ),
    Lesson(
        "Layer norm",
        "Layer norm rescales each token's vector (mean 0, variance 1) before a sublayer reads it, "
        "so what the blocks add cannot blow up or die out.",
        "N: switch the layer norm off and on; watch the norm line",
        "block_lab",
        observe_layer_norm,
        lab=DEEP_LAB,
    ),
    Lesson(
        "Pre-LN vs post-LN",
        "GPT-2 normalises before each sublayer (pre-LN); the 2017 Transformer did it after the residual add "
        "(post-LN), which fixes the stream's size.",
        "o: switch between pre-LN and post-LN",
        "block_lab",
        observe_pre_post,
        lab=DEEP_LAB,
    ),
    Lesson(
        "Stacking layers: the logit lens",
        "The logit lens reads the residual stream after each block through the final layer norm and the unembedding: "
        "the guess if the model stopped there.",
        "n: generate a token · ← / →: look back at a token's step",
        None,
        observe_lens,
    ),
    Lesson(
        "The generation loop and the KV cache",
        "Generation repeats: run the context, draw a token from the last position, append it. "
        "Earlier tokens' keys and values are kept: the KV cache.",
        "n a few times, then g to run (g again pauses)",
        None,
        observe_generation_loop,
    ),
    Lesson(
        "Temperature, top-k and top-p",
        "Temperature divides the logits (below 1 sharpens, above 1 flattens, 0 is greedy); "
        "top-k keeps the k likeliest tokens, top-p the fewest that reach p.",
        "t / T: temperature · k / K: top-k · p / P: top-p",
        None,
        observe_sampling,
    ),
    Lesson(
        "Comparing two temperatures",
        "One model at two temperatures reads the same text (B takes A's token); "
        "KL measures how far apart their next-token distributions are.",
        "n: step both · t / T: A's temperature · f: independent texts",
        "compare",
        observe_compare,
    ),
    Lesson(
        "Multilingual tokenization",
        "A tokenizer trained on English cuts other scripts into more, smaller pieces: "
        "the same sentence costs more tokens and fills more of the context.",
        "ctrl+n: the next example sentence (Russian, Chinese, Arabic, Hindi, …)",
        "tokenize",
        observe_tokenization,
    ),
    Lesson(
        "Reflection",
        "What changed when you tweaked dimensions, temperatures or prompts? "
        "Where did the attention concentrate, and did it match your intuition?",
        "e: save the figures that best illustrate your understanding · i: your own text",
        None,
        observe_reflection,
    ),
)


def open_lesson(app: Any, lesson: Lesson) -> None:
    """Back to the main screen, then the lesson's screen with its starting state."""
    while len(app.screen_stack) > 1:
        app.pop_screen()
    if lesson.screen is not None:
        app.open_screen(lesson.screen, lab=lesson.lab)
