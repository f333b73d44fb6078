"""Guided lessons that follow the seed notebook (Transformer Fundamentals 06): a tour of the panes, the
block's anatomy, masking, residuals, layer norm, the feed-forward network, stacking, the generation loop,
sampling, comparing, where the attention goes, tokenization, reflection, encoders vs decoders, GPT-2's block vs the
modern one, and a real model's heads.

Each lesson is taught as predict → observe → explain → check: before the task, a question to predict
(`predict`); the task with keys (`task`); the live observation (`observe(app)`: one line computed from
what is on screen now and, in the block lab, from the same block with the lesson's switch flipped);
once the observation has changed, why it behaves so (`why`, five to eight lines tied to the screen); and
one question to check understanding (`check`, answered by `answer` on a key). `pane` names the pane the
lesson talks about: it stays in sight while the lesson is open.

Observations read the session's public state (`app.session`) and what the shown screen publishes for lessons
(`lesson_facts()`, named by its `LESSON_NAME`). Lessons import no screen: the app opens a lesson's screen by
name (`app.open_screen`).

Every fact these texts state was checked against the tool's own numbers (the block lab, the toy model and,
for a real model's heads, SmolLM2-135M-Instruct's Q4_1 GGUF run by tfund's NumPy engine).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import astuple, dataclass, replace
from typing import Any

import numpy as np

from engine.events import counted
from engine.model.blocklab import BlockLabConfig, BlockLabResult, kv_cache_bytes, lab_number, run_block_lab
from engine.model.head_stats import attention_matrix, head_stats, near_uniform, uniform_stats
from engine.runtime.sources import SMOLLM2_NAME
from engine.store.smollm2 import is_fetched
from engine.views.tokenization import EXAMPLES, TRANSLATIONS, tokenize
from tui.captions import settings_phrase
from tui.heatmap import head_grid
from tui.numbering import block_head_text, head_label
from tui.pieces import label_text
from tui.references import angle, chance_text, kl_word
from tui.widgets.candidates import percent
from tui.widgets.layers import lens_percent
from tui.widgets.pane import Pane

DEEP_LAB = BlockLabConfig(n_layers=6)  # the notebook's block, stacked six deep
BLOWN_UP_LAB = BlockLabConfig(n_layers=6, weight_scale=0.2)  # where switching layer norm off shows
FFN_LAB = BlockLabConfig(attention=False)  # only the position-wise feed-forward networks act
GPT2_LAB = BlockLabConfig(activation="gelu", positions="learned")  # GPT-2's block: LayerNorm, learned positions, GELU, a KV head per head
REPEATED_WORDS = (
    "violet anchor seven maple drift copper lantern quiet orbit ginger."  # ten random words: only induction predicts their repeat
)
HEADS_PROMPT = f"{REPEATED_WORDS} {REPEATED_WORDS}"


@dataclass(frozen=True)
class Lesson:
    title: str
    text: str  # what to notice, in a sentence or two
    task: str  # the one thing to do, with keys (one line at 80 columns)
    predict: str  # the question to answer before doing it (one line at 80 columns)
    why: str  # why it behaves so, tied to what is on screen: shown once the observation changed (W)
    check: str  # one question to check understanding (C), answered by `answer` (C again)
    answer: str
    screen: str | None  # the screen it happens on, as tui.app.TfundApp.open_screen names it (None: the main screen)
    pane: str  # the id of the pane the lesson talks about
    observe: Callable[[Any], str]  # app -> one line computed from the current state
    lab: BlockLabConfig | None = None  # the block lab's starting settings
    prompt: str | None = None  # the prompt the lesson sets (None: the learner's stays)
    model_b: str | None = None  # compare: model B to start with (a name for load_model)
    quantize_b: str | None = None  # compare: B's matrices rounded through this type


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
WAITING = "Waiting for the model…"
LESSON_PENDING = ("Open ", "Waiting")  # an observation that starts so is not the lesson's starting state yet


def norms_text(norms: np.ndarray) -> str:  # the stream's norm after each block, as the learner reads it
    return " ".join(lab_number(v, 1) if not np.isfinite(v) or v < 100 or v >= 1e5 else f"{v:.0f}" for v in norms[1:])


def observe_tour(app: Any) -> str:
    focused = app.screen.focused
    panes = [node for node in focused.ancestors_with_self if isinstance(node, Pane)] if focused else []
    if not panes:
        return "tab moves the focus from pane to pane"
    title = str(panes[0].border_title).split(" · ")[0]
    return f"the focus is on {title}: E explains it, tab moves on"


def observe_anatomy(app: Any) -> str:
    config = lab_config(app)
    if config is None:
        return LAB_MISSING
    metrics = lab_run(config).metrics
    norms, token_cos = metrics["resid_norm"], metrics["token_cosine"]
    blocks = counted(config.n_layers, "block")
    return (
        f"{blocks}: norm {lab_number(norms[0])} → {lab_number(norms[-1])} (√d_model {np.sqrt(config.d_model):.2f}), token cosine "
        f"{lab_number(token_cos[0])} → {lab_number(token_cos[-1])} ({angle(token_cos[0])} → {angle(token_cos[-1])})"
    )


def future_attention(result: BlockLabResult) -> float:  # the mean weight a token gives to tokens after it
    attention = result.attention  # [L, H, T, T]
    return float(np.triu(attention, 1).sum(axis=-1).mean())


def observe_masking(app: Any) -> str:
    config = lab_config(app)
    if config is None:
        return LAB_MISSING
    now, flipped = lab_run(config), lab_run(replace(config, causal=not config.causal))
    state, other = ("on", "off") if config.causal else ("off", "on")
    last_row = float(np.abs(now.attention[..., -1, :] - flipped.attention[..., -1, :]).max())
    return (
        f"mask {state} (now): to later tokens {lab_number(future_attention(now))}, token 0 on itself "
        f"{lab_number(now.attention[..., 0, 0].mean())} — mask {other}: {lab_number(future_attention(flipped))}, "
        f"{lab_number(flipped.attention[..., 0, 0].mean())} · last row differs by {lab_number(last_row, 3)}"
    )


def observe_residual(app: Any) -> str:
    config = lab_config(app)
    if config is None:
        return LAB_MISSING
    flipped = replace(config, residual=not config.residual)
    now, other = lab_run(config).metrics["token_cosine"][-1], lab_run(flipped).metrics["token_cosine"][-1]
    name = lambda c: f"residual {'on' if c.residual else 'off'}"  # noqa: E731
    return (
        f"token cosine after block {config.n_layers}: {lab_number(now)} ({angle(now)}) with {name(config)} (now) — "
        f"{lab_number(other)} ({angle(other)}) with {name(flipped)}"
    )


def observe_layer_norm(app: Any) -> str:
    config = lab_config(app)
    if config is None:
        return LAB_MISSING
    flipped = replace(config, layer_norm=not config.layer_norm)
    name = lambda c: f"LN {'on' if c.layer_norm else 'off'}"  # noqa: E731
    now, other = lab_run(config).metrics["resid_norm"], lab_run(flipped).metrics["resid_norm"]
    return f"norm after each block, {name(config)} (now): {norms_text(now)} — {name(flipped)}: {norms_text(other)}"


def observe_pre_post(app: Any) -> str:
    config = lab_config(app)
    if config is None:
        return LAB_MISSING
    if not config.layer_norm:
        return "The layer norm is off, so pre- and post-LN are the same block: N turns it on."
    flipped = replace(config, pre_ln=not config.pre_ln)
    name = lambda c: "pre-LN" if c.pre_ln else "post-LN"  # noqa: E731
    now, other = lab_run(config).metrics["resid_norm"], lab_run(flipped).metrics["resid_norm"]
    return (
        f"norm after each block, {name(config)} (now): {norms_text(now)} — {name(flipped)}: {norms_text(other)} "
        f"(√d_model {np.sqrt(config.d_model):.2f})"
    )


def changed_rows(config: BlockLabConfig) -> list[int]:
    """The output rows (after the last block) that differ from the same stack with X unchanged."""
    changed, original = lab_run(config).resid[-1], lab_run(replace(config, changed_token=None)).resid[-1]  # [T, d] each
    return np.flatnonzero(np.abs(changed - original).max(axis=-1) > 1e-12).tolist()


def rows_text(rows: list[int]) -> str:
    if len(rows) > 2 and rows == list(range(rows[0], rows[-1] + 1)):
        return f"{rows[0]}–{rows[-1]}"
    return ", ".join(map(str, rows)) or "none"


def observe_feed_forward(app: Any) -> str:
    config = lab_config(app)
    if config is None:
        return LAB_MISSING
    mlp, attention = 2 * config.d_model * config.d_ff, 4 * config.d_model**2  # weights of one block (no biases)
    share = f"MLP weights {mlp:,} of the block's {mlp + attention:,} ({mlp / (mlp + attention):.0%})"
    if config.changed_token is None:
        return f"X unchanged (I flips row {config.T // 2}) · {share}"
    attention_state = "on" if config.attention else "off"
    return (
        f"row {config.changed_token} of X flipped: output rows changed {rows_text(changed_rows(config))} "
        f"(attention {attention_state}) · {share}"
    )


# ---- the main screen ---------------------------------------------------------------------------------
def observe_lens(app: Any) -> str:
    """The lens the Layers pane shows: the live next token's, or, time travelling (← →), the shown step's."""
    session = app.session
    lens, _, _, _ = session.shown_layers()
    travel = session.travelled()
    if not lens or session.model_info is None:
        if travel is None:
            return WAITING
        return "token 1: nothing before it predicts it" if travel[0] == 0 else f"token {travel[0] + 1}'s step: its lens is being computed…"
    final = lens[-1].token_id
    settled = len(lens)  # the first block from which every lens row agrees with the final guess (1-based)
    while settled > 1 and lens[settled - 2].token_id == final:
        settled -= 1
    earlier = ", ".join(label_text(e.text, 10) for e in lens[: settled - 1]) or "nothing else"
    where = f"{len(session.transcript.positions)} tokens" if travel is None else f"token {travel[0] + 1}'s step (← →)"
    return (
        f"{where}: the lens settles on '{label_text(lens[-1].text, 12)}' ({lens_percent(lens[-1].p).strip()}; "
        f"chance {chance_text(session.model_info.vocab_size)}) at block {settled} of {len(lens)}; before: {earlier}"
    )


def cache_numbers_per_token(app: Any) -> int:
    """A key and a value per KV head in every block: 2 × layers × d_model, or fewer with grouped-query attention
    (the NumPy weights say how many KV heads; without them, one per query head is assumed)."""
    info, net = app.session.model_info, getattr(app.session.model, "net", None)
    if net is None:
        return 2 * info.n_layer * info.d_model
    return 2 * info.n_layer * net.arch.n_kv_heads * net.arch.d_head


def observe_generation_loop(app: Any) -> str:
    session = app.session
    if session.model_info is None:
        return WAITING
    n_tokens = len(session.transcript.positions)
    step = session.transcript.last_ms
    took = "none generated yet" if step is None else f"{session.transcript.n_generated} generated, the last in {step:.1f} ms"
    return (
        f"context {n_tokens} tokens · {took} · a step runs 1 token through the MLPs, its attention reads all "
        f"{n_tokens} cached keys · cache {cache_numbers_per_token(app):,} numbers per token"
    )


def observe_sampling(app: Any) -> str:
    session = app.session
    candidates = session.transcript.candidates
    if not candidates or session.model_info is None:
        return WAITING
    config = session.transcript.candidates_config or session.settings
    top = candidates[0]
    kept = sum(c.p > 0 for c in candidates)
    return (
        f"{settings_phrase(config)}: the top candidate has {percent(top.p).strip()} after warping ({percent(top.p_raw).strip()} before); "
        f"{kept} of the top {len(candidates)} can be drawn · chance {chance_text(session.model_info.vocab_size)}"
    )


def observe_compare(app: Any) -> str:
    facts = shown_facts(app, "compare")
    if facts is None:
        return "Open compare (c) to see this."
    (a, b), steps = facts["temperatures"], facts["steps"]
    if not steps:
        return f"A at T {a:.2f}, B at T {b:.2f}: no step yet (n steps both)"
    last = steps[-1]
    agree = sum(step.top1_agree for step in steps)
    return (
        f"A at T {a:.2f}, B at T {b:.2f}: step #{last.index} KL(A‖B) {last.kl:.3f} nats ({kl_word(last.kl)}) · "
        f"top-1 agrees in {agree} of {len(steps)} steps"
    )


def top_order_moved(steps: list) -> int:
    """Steps at which A's and B's five likeliest tokens are not the same tokens in the same order."""
    return sum([c.token_id for c in st.candidates_a[:5]] != [c.token_id for c in st.candidates_b[:5]] for st in steps)


def compare_models(app: Any) -> tuple[str, str, list, str] | None:
    """(A's name, B's name, the steps, the mode) on the compare screen, None elsewhere."""
    facts = shown_facts(app, "compare")
    return None if facts is None else (*facts["models"], facts["steps"], facts["mode"])


def observe_real_model(app: Any) -> str:
    shown = compare_models(app)
    if shown is None:
        return "Open compare (c) to see this."
    a, b, steps, mode = shown
    if b is None or b == a:
        return "Waiting for model B: reading a real model takes seconds…"
    how = "compared on text (two tokenizers)" if mode == "text" else "same vocabulary"
    if not steps:
        return f"{a} vs {b}, {how}: no step yet (n steps both)"
    kl = float(np.mean([st.kl_raw for st in steps]))
    agree = sum(st.top1_agree for st in steps)
    return f"{a} vs {b}, {how}: {len(steps)} steps · mean KL at T=1 {kl:.2f} nats ({kl_word(kl)}) · top-1 agrees {agree}/{len(steps)}"


def observe_quantized(app: Any) -> str:
    shown = compare_models(app)
    if shown is None:
        return "Open compare (c) to see this."
    a, b, steps, _ = shown
    if b is None or " at Q" not in b:
        return f"Waiting for model B ({a} rounded to a llama.cpp type; u picks the next one)…"
    if not steps:
        return f"B is {b}: no step yet (n steps both)"
    kl = float(np.mean([st.kl_raw for st in steps]))
    agree = sum(st.top1_agree for st in steps)
    return (
        f"B is {b}: {len(steps)} steps · mean KL at T=1 {kl:.1e} nats ({kl_word(kl)}) · top-1 agrees {agree}/{len(steps)}"
        f" · top-5 order moved in {top_order_moved(steps)}"
    )


def observe_attention(app: Any) -> str:
    session = app.session
    rows, ids = session.transcript.rows, [p.token_id for p in session.transcript.positions]
    if session.model_info is None or not rows:
        return WAITING
    pattern = head_grid(rows, session.shown_layer, session.shown_head)  # [T, T] the head (or mean) the Attention pane shows
    stats = {name: float(values[0, 0]) for name, values in head_stats(pattern[None, None], ids).items()}
    uniform = uniform_stats(ids)
    closeness = "≈ uniform" if near_uniform(stats["entropy"], uniform["entropy"]) else f"{uniform['entropy'] - stats['entropy']:.2f} below"
    return (
        f"{block_head_text(session.shown_layer, session.shown_head)} on {len(ids)} tokens: entropy {stats['entropy']:.2f} "
        f"(uniform {uniform['entropy']:.2f}, {closeness}) · sink {stats['sink']:.2f} ({uniform['sink']:.2f}) · "
        f"prev {stats['prev_token']:.2f} ({uniform['prev_token']:.2f})"
    )


_english: dict[str, int] = {}  # tokenizer source name -> its token count for the English example


def observe_tokenization(app: Any) -> str:
    facts = shown_facts(app, "tokenize")
    if facts is None or facts["tokenization"] is None:
        return "Open tokenization (w) to see this."
    view, source = facts["tokenization"], facts["source"]
    if source not in _english:
        _english[source] = tokenize(facts["tokenizer"], EXAMPLES[0].text).n_tokens
    english = _english[source]
    if view.text not in TRANSLATIONS:
        return f"this text: {view.n_tokens} tokens for {view.n_chars} characters ({view.n_bytes} bytes) · not a translation of the English"
    return (
        f"this sentence: {view.n_tokens} tokens = {view.n_tokens / english:.1f}× the English example's {english} · "
        f"{view.n_chars} characters, {view.n_bytes} UTF-8 bytes"
    )


def observe_reflection(app: Any) -> str:
    saved = app.figures_saved
    where = app.session.options.export_dir
    return f"figures saved this session: {saved} files in {where}" if saved else f"nothing saved yet: e writes this screen into {where}"


def observe_encoder_decoder(app: Any) -> str:
    config = lab_config(app)
    if config is None:
        return LAB_MISSING
    now, flipped = lab_run(config), lab_run(replace(config, causal=not config.causal))
    decoder, encoder = (now, flipped) if config.causal else (flipped, now)
    which = "a decoder's (now)" if config.causal else "an encoder's (now)"
    last_row = float(np.abs(decoder.attention[..., -1, :] - encoder.attention[..., -1, :]).max())
    return (
        f"{which} attention · weight on later tokens: decoder {future_attention(decoder):.2f}, encoder "
        f"{future_attention(encoder):.2f} · the last row differs by {last_row:.3f}"
    )


def gpt2_block_of(config: BlockLabConfig) -> BlockLabConfig:
    """The same sizes and switches with GPT-2's choices: LayerNorm, learned positions, GELU, a KV head per query head."""
    return replace(config, norm_kind="layer", positions="learned", activation="gelu", n_kv_heads=None)


def modern_parts(config: BlockLabConfig) -> list[str]:
    """Where the lab's block differs from GPT-2's, in the order of the keys O U y H."""
    parts = ["RMSNorm"] if config.norm_kind == "rms" else []
    parts += {"rope": ["RoPE"], "none": ["no positions"]}.get(config.positions, [])
    parts += {"swiglu": ["SwiGLU"], "relu": ["ReLU"]}.get(config.activation, [])
    return parts + ([f"{config.kv_heads} KV heads"] if config.kv_heads != config.n_heads else [])


def observe_modern_block(app: Any) -> str:
    config = lab_config(app)
    if config is None:
        return LAB_MISSING
    gpt2 = gpt2_block_of(config)
    now, before = lab_run(config), lab_run(gpt2)
    token_cos = lab_number(now.metrics["token_cosine"][-1])
    parts = modern_parts(config)
    if not parts:
        return f"GPT-2's block (now): KV cache {kv_cache_bytes(config):,} B/token, token cos {token_cos} · O U y H swap one part"
    moved = float(np.abs(now.resid[-1] - before.resid[-1]).max())
    return (
        f"{' + '.join(parts)} (now): KV cache {kv_cache_bytes(config):,} B/token (GPT-2's {kv_cache_bytes(gpt2):,}) · the output "
        f"moved by up to {lab_number(moved)} · token cos {token_cos} (GPT-2's {lab_number(before.metrics['token_cosine'][-1])})"
    )


def smollm2_hint(app: Any) -> str:
    """Where a real model's heads are, when the loaded model is not SmolLM2: one line."""
    if app.session.options.model_name == SMOLLM2_NAME:
        return ""
    return " · SmolLM2's: tfund-tui --model smollm2" if is_fetched() else " · a real model's: tfund fetch smollm2"


_context_stats: list = []  # [first row, last row, number of rows, (statistics, uniform's)] of the last context seen


def context_stats(rows: list[np.ndarray], ids: list[int]) -> tuple[dict, dict]:
    """Every head's statistics on the context, and uniform attention's, remembered: the observation refreshes
    4 times a second, the context changes only with a step (it holds the rows, so they are the same objects)."""
    seen = _context_stats
    if not (seen and seen[0] is rows[0] and seen[1] is rows[-1] and seen[2] == len(rows)):
        seen[:] = [rows[0], rows[-1], len(rows), (head_stats(attention_matrix(rows), ids), uniform_stats(ids))]
    return seen[3]  # {name: [L, H]}, {name: float}


def observe_real_heads(app: Any) -> str:
    session = app.session
    rows, ids = session.transcript.rows, [p.token_id for p in session.transcript.positions]
    if session.model_info is None or not rows or not session.engine.idle:  # not idle: the lesson's prompt is on its way
        return WAITING
    stats, uniform = context_stats(rows, ids)
    n_layers, n_heads = stats["sink"].shape
    sinks = int((stats["sink"] > 0.5).sum())
    prev = np.unravel_index(np.argmax(stats["prev_token"]), stats["prev_token"].shape)
    text = (
        f"{session.options.model_name}, {len(ids)} tokens: {sinks} of {n_layers * n_heads} heads sinks (>½ on token 0) · "
        f"best prev {head_label(*prev)} {stats['prev_token'][prev]:.2f}"
    )
    if np.isnan(stats["induction"]).all():
        text += " · no token repeats: no induction to see"
    else:
        ind = np.unravel_index(np.nanargmax(stats["induction"]), stats["induction"].shape)
        text += f", ind {head_label(*ind)} {stats['induction'][ind]:.2f}"
    return f"{text} (uniform {uniform['prev_token']:.2f}, {uniform['induction']:.2f}){smollm2_hint(app)}"


LESSONS = (
    Lesson(
        title="A tour of the panes",
        text="The toy model continues the prompt one token at a time. Parameters: the settings; Generation: the text; "
        "Candidates: the next token's likeliest; Attention: who looks at whom; Layers: the stream, block by block.",
        task="tab: move the focus from pane to pane · E: explain the focused one",
        predict="Which pane shows what the model writes next? Which, what it read?",
        why="Candidates lists the next token's likeliest continuations with their probabilities: the model's whole "
        "output is this one distribution over its vocabulary (chance, 1/V, is beside the title). Generation draws "
        "from it and appends the token; the p and ent rows under the text record each step. Attention shows, for "
        "one block (one head or their mean), how much each token (row) reads each earlier one (column). Layers "
        "follows the newest token's vector, the residual stream, through the blocks, with the logit lens's guess "
        "after each.",
        check="Which pane tells you the model is unsure what comes next?",
        answer="Candidates: several tokens with similar p (and a tall bar in the timeline's ent row: high entropy).",
        screen=None,
        pane="generation-pane",
        observe=observe_tour,
    ),
    Lesson(
        title="The block's anatomy",
        text="One block: layer norm → causal attention → add back (residual) → layer norm → feed-forward → add back. "
        "Here: the notebook's block on its random X, bit for bit.",
        task="l / L: one block fewer or more; watch the Representations pane",
        predict="Stack more blocks: will the tokens grow alike (cosine up) or apart?",
        why="X is tiny (0.1·randn: norm ≈ 0.1·√32 = 0.57), but each sublayer reads a layer-normed copy of norm "
        "√d_model = 5.66, so after one block what the sublayers added already dominates the stream. "
        "With random weights at this scale attention is nearly uniform: each token's attention output is close to "
        "the average of the tokens before it, and adding that shared average makes the tokens alike (cosine "
        "−0.02 → 0.50). The feed-forward network then transforms each position on its own. A trained model's "
        "attention is not uniform: its tokens stay distinct.",
        check="Why does the token cosine rise although the residual keeps each token's own X?",
        answer="X is small next to what the sublayers add, and near-uniform attention adds nearly the same average to "
        "every token: the shared part dominates.",
        screen="block_lab",
        pane="lab-plot-pane",
        observe=observe_anatomy,
        lab=BlockLabConfig(),
    ),
    Lesson(
        title="Causal masking",
        text="A decoder may not look ahead: the mask sets the scores of later tokens to −∞ before the softmax, so "
        "their weights are 0 and the map is a triangle. An encoder (BERT) has no mask.",
        task="u: switch the causal mask off, and on again",
        predict="Without the mask, which row of the attention map stays the same?",
        why="Masked scores become −∞, so after the softmax their weights are exactly 0 and each row renormalises "
        "over its past: row 0 can only look at itself (1.00). Without the mask, each row spreads over all 8 "
        "positions (at this small scale close to 1/8 each, so 0.43 of a row lands on later tokens on average). "
        "The last row already sees every position, so it is identical either way (it differs by 0.000). That is "
        "why a cached decode step, whose one new query is the last row, needs no mask, while the prefill of a "
        "prompt does.",
        check="Why does a decoder need the mask when it is trained?",
        answer="Training predicts every position's next token in one parallel pass: without the mask, position i "
        "could read token i+1, the very answer it is asked for.",
        screen="block_lab",
        pane="lab-attention-pane",
        observe=observe_masking,
        lab=BlockLabConfig(),
    ),
    Lesson(
        title="Residual connections",
        text="Each sublayer adds its output to its input (x + f(x)). Without that, every block rewrites the tokens, "
        "and deep down they all look alike.",
        task="R: switch the residual connections off and on",
        predict="Without residuals, will the tokens stay distinct after 6 blocks?",
        why="With residuals each sublayer writes a correction that is added to the stream, so every block's input "
        "survives. Without them each block replaces its input: near-uniform attention averages the tokens "
        "together block after block until they point the same way (token cosine 0.99, 8°): rank collapse. Even "
        "with residuals on the cosine climbs to 0.70 (46°), since that average is added to every token. In "
        "training the residual path matters still more: an identity path the gradient flows along, so each block "
        "only has to learn a change (He et al., 2016).",
        check="With residuals off, how much does block 6's output still follow X?",
        answer="Hardly at all: each block rewrote its input (cos(l, l-1) near 0 in the chart), and all tokens ended up nearly alike.",
        screen="block_lab",
        pane="lab-plot-pane",
        observe=observe_residual,
        lab=DEEP_LAB,
    ),
    Lesson(
        title="Layer norm",
        text="Layer norm centres each token's vector and divides it by its standard deviation (GPT-2 then applies a "
        "learned gain and bias). In pre-LN it fixes the scale of what each sublayer reads; the stream still grows.",
        task="N: switch the layer norm off and on (this stack starts at scale 0.2)",
        predict="Scale 0.2, layer norm off: will the norm stay, shrink or explode?",
        why="Every sublayer reads LN(x): mean 0, variance 1, so its input has norm √d_model = 5.66 however long the "
        "stream has grown, and what it adds cannot run away with the stream's size. The stream itself still grows "
        "with LN on (9.7 → 22.5 here; 1.3 → 40.7 in the trained toy's Layers pane), because every block adds to "
        "it. Without LN a sublayer reads the raw stream: at this scale its output is larger than its input, and "
        "the norm multiplies block after block (→ 638). At the notebook's scale 0.1 (z) nothing explodes: the "
        "sublayers read a tiny input and add little (0.55 → 0.86).",
        check="In pre-LN, what does layer norm keep constant: the stream's size, or what each sublayer reads?",
        answer="What each sublayer reads (norm √d_model before the gain); the stream keeps growing with depth.",
        screen="block_lab",
        pane="lab-plot-pane",
        observe=observe_layer_norm,
        lab=BLOWN_UP_LAB,
    ),
    Lesson(
        title="Pre-LN vs post-LN",
        text="GPT-2 normalises before each sublayer (pre-LN); the 2017 Transformer did it after the residual add, "
        "LN(x + f(x)) (post-LN), which fixes the stream's own size.",
        task="o: switch between pre-LN and post-LN",
        predict="With post-LN, what will the norm be after every block?",
        why="Post-LN normalises the stream itself after every residual add, so each block's output has norm "
        "√d_model = √32 = 5.66 (this LN has no gain). Pre-LN normalises only the copy each sublayer reads, so the "
        "stream grows block by block (2.3 → 5.5 here), and the model needs a final layer norm (ln_f) before the "
        "unembedding; post-LN has none. Pre-LN trains stably without a learning-rate warm-up (Xiong et al., "
        "2020), which is why GPT-2 and later models moved the norm. Many recent models use RMSNorm there: no "
        "centring and no bias.",
        check="Why exactly 5.66?",
        answer="After LN a vector's 32 numbers have mean 0 and variance 1: their squares add up to 32, so its length is √32 = 5.66.",
        screen="block_lab",
        pane="lab-plot-pane",
        observe=observe_pre_post,
        lab=DEEP_LAB,
    ),
    Lesson(
        title="The feed-forward network",
        text="Attention moves information between positions; the feed-forward network (MLP) transforms each position "
        "on its own, with the same weights everywhere: d_model → d_ff, a nonlinearity, back to d_model.",
        task="I: flip one token's input · A: attention on · y: activation · f F: d_ff",
        predict="Attention is off. Flip row 4 of X: which rows of the output change?",
        why="The MLP applies the same W1 and W2 to every row and never reads another row: with attention off only the "
        "flipped token's output changes; with it on (A) rows 4–7 change too, as later tokens read token 4. Each "
        "row is expanded to d_ff (notebook 2×, GPT-2 4×), gated by ReLU or GELU (y) and projected back: the first "
        "layer's columns act like feature detectors, the second writes directions into the stream. Its 2·d_model·"
        "d_ff weights are half the block here, two thirds at d_ff = 4·d_model (F). On the main screen X knocks "
        "out an MLP; a shows MLPs write most of a logit (11.0 of ' everyone's 12.8).",
        check="Double d_ff: which weights double, and can the MLP now mix tokens?",
        answer="W1 and W2 (2·d_model·d_ff); attention's stay. No: each row is still transformed alone; only "
        "attention moves information between positions.",
        screen="block_lab",
        pane="lab-config-pane",
        observe=observe_feed_forward,
        lab=FFN_LAB,
    ),
    Lesson(
        title="Stacking layers: the logit lens",
        text="The logit lens reads the residual stream after each block through the final norm (ln_f) and the "
        "unembedding: the guess if the model stopped there.",
        task="n: generate a token · ← / →: look back at a token's step",
        predict="At which block will the lens first guess the final token?",
        why="Every block adds to one shared stream, so the guess can be read after any block by applying what the "
        "model applies at the end: ln_f and the unembedding. On the toy, early blocks give rough guesses (' there' "
        "for blocks 1–4 on the default prompt) that change as later blocks add their part (' everyone' from block 5). The "
        "last row is exactly the model's own prediction; the lens is compared with the model's likeliest token, "
        "not the one drawn. Early blocks were not trained to be read this way, so their guesses are biased (a "
        "tuned lens corrects that); with GPT-2 the plain lens works fairly well.",
        check="Why is the lens's last row exactly the model's own p?",
        answer="After the last block, ln_f and the unembedding are what the model itself applies: the lens adds nothing there.",
        screen=None,
        pane="layers-pane",
        observe=observe_lens,
    ),
    Lesson(
        title="The generation loop and the KV cache",
        text="Generation repeats: run the context, draw a token from the last position, append it. "
        "Earlier tokens' keys and values are kept: the KV cache.",
        task="n a few times, then g to run (g again pauses)",
        predict="With the KV cache, does a step get slower as the context grows?",
        why="Without a cache every step would run the whole context through the model again. With it, each layer "
        "keeps every earlier token's keys and values, so a step runs only the new token through the projections "
        "and MLPs; but its query still attends over all N cached keys, so attention's work grows with the "
        "context. The cache costs 2 × layers × d_model numbers per token: 2,304 for the toy, 18,432 for GPT-2 "
        "small (74 KB in fp32; 75 MB at 1,024 tokens); grouped-query attention exists to shrink it. Learned "
        "absolute positions cap the context: 256 tokens for the toy, 1,024 for GPT-2.",
        check="Why does the new token's one query need no causal mask?",
        answer="It is the last position: every cached key is in its past, so there is nothing to hide.",
        screen=None,
        pane="generation-pane",
        observe=observe_generation_loop,
    ),
    Lesson(
        title="Temperature, top-k and top-p",
        text="Temperature divides the logits (below 1 sharpens, above 1 flattens, 0 is greedy); then top-k keeps the "
        "k likeliest tokens, and top-p the fewest likeliest whose p add up to at least p.",
        task="t / T: temperature · k / K: top-k · p / P: top-p",
        predict="At T 0.5, will the top candidate's p go up or down?",
        why="Dividing the logits by T < 1 stretches the gaps between them, so after the softmax the likeliest tokens "
        "take more of the mass; T > 1 squeezes the gaps and flattens; T → 0 puts everything on the top token. "
        "The order never changes with T. Top-k then drops all but the k likeliest; top-p keeps the fewest "
        "likeliest whose p add up to at least p; the survivors are renormalised (the after column). Top-p acts "
        "after temperature, so lowering T also shrinks the nucleus. The notebook samples at T 0.8 with top-p "
        "0.95; the app starts at top-p 1.00, which is off.",
        check="Temperature 2 and top-k 1: what is drawn?",
        answer="Always the likeliest token: top-k 1 leaves one candidate, and temperature cannot change which one is likeliest.",
        screen=None,
        pane="candidates-pane",
        observe=observe_sampling,
    ),
    Lesson(
        title="Comparing two temperatures",
        text="One model at two temperatures reads the same text (B takes A's token); "
        "KL(A‖B) measures how differently they predict the next token, in nats.",
        task="n: step both · t / T: A's temperature · f: independent texts",
        predict="One model at two temperatures: can their top-1 tokens ever differ?",
        why="Both sides read the same context. Dividing the logits by a positive T keeps their order, so the "
        "likeliest token is the same: top-1 agreement is guaranteed here, whatever the KL. Only another model or "
        "another context (f: independent texts, where KL compares predictions for different texts) can break it. "
        "KL(A‖B) = Σ p_A ln(p_A/p_B): the extra nats per token of coding A's draws with B's distribution; not "
        "symmetric, and infinite where B cuts a token A can draw (it is floored). To compare two models, as the "
        "notebook asks, i loads another as B (gpt2, if it is in your cache).",
        check="KL(A‖B) is 0.000 at some step: what does that say about A and B there?",
        answer="Their next-token distributions are the same at that step: KL is 0 only when they agree on every token.",
        screen="compare",
        pane="cmp-strip",
        observe=observe_compare,
    ),
    Lesson(
        title="Where did the attention concentrate?",
        text="The Attention pane shows a block's mean of heads, which blurs what single heads do. Read one head at a "
        "time, against uniform attention on the same context.",
        task="{ }: one head at a time · [ ]: blocks · h: all heads, o sorts them",
        predict="Will any toy head put most of its weight on one token?",
        why="A focused head has low entropy. The baseline is uniform attention over each row's past: a head within "
        "0.1 nats of it (that gap is its mean KL from uniform) reads ≈ uniform on the h screen. sink: weight on "
        "the first token; prev: on the previous one; ind: on the token after an earlier copy of this one (A B … "
        "A → B), how a model continues a repeat. The toy's heads are diffuse: on its English example typed twice "
        "(i), entropies 1.86–2.36 against uniform's 2.45, best prev 0.17 and ind 0.08 against 0.11 and 0.05. "
        "Larger models (GPT-2, SmolLM2) have crisp heads: see 'A real model's heads'.",
        check="Why does the mean of heads look blurrier than any one head?",
        answer="Averaging patterns that point at different tokens spreads the weight: the mean's entropy is at least "
        "the heads' average entropy.",
        screen=None,
        pane="attention-pane",
        observe=observe_attention,
    ),
    Lesson(
        title="Multilingual tokenization",
        text="A tokenizer trained on English cuts other scripts into more, smaller pieces: the same sentence costs "
        "more tokens and fills more of the context.",
        task="ctrl+n: the next example sentence (Russian, Chinese, Arabic, Hindi, …)",
        predict="The same sentence: will Chinese or Hindi cost more tokens?",
        why="A BPE tokenizer learns merges from its training text, so frequent English words are one token. For a "
        "script it rarely saw it has no merges, and a byte-level tokenizer falls back to one token per UTF-8 "
        "byte: 2 per Cyrillic or Arabic letter, 3 per Chinese character or Devanagari letter (the bytes column). "
        "So the same sentence costs 5–11× the English tokens here (Chinese 5.1×, Russian 8.2×, Hindi 10.6×): more "
        "context, more compute. Compare tokens for the same sentence, not characters per token. Multilingual "
        "tokenizers (mBERT, XLM-R) share a vocabulary among scripts: s loads one.",
        check="Chinese has fewer characters per token than Russian here; why does it still cost fewer tokens?",
        answer="Its 22 characters hold the whole sentence (66 tokens), while Russian needs 58 characters, mostly "
        "2-byte letters (107 tokens): per sentence, Chinese is cheaper.",
        screen="tokenize",
        pane="tok-summary-pane",
        observe=observe_tokenization,
    ),
    Lesson(
        title="Reflection",
        text="What changed when you tweaked dimensions, temperatures or prompts? "
        "Where did the attention concentrate, and did it match your intuition?",
        task="e: save the figures that show your understanding · i: your own text",
        predict="Which screen would you save to explain one idea to a friend?",
        why="Each figure is saved as an SVG of the screen plus its numbers as data, so what you claim can be checked "
        "later. Good figures put a number beside its reference: a candidate's p beside chance (1/V, 0.069% for "
        "the toy), an entropy beside ln V (7.3), a head's statistics beside uniform attention on the same "
        "context, a lab norm beside √d_model. In the lab, d D f F j J change the widths and heads; on the main "
        "screen, t T reshape the candidates but never their order; a prompt repeated twice (i) is where "
        "induction would show.",
        check="Name a number on screen and the reference that tells you whether it is large.",
        answer="For example a candidate's p against 1/V, an entropy against ln V, a head's entropy against uniform "
        "on its context, a norm against √d_model.",
        screen=None,
        pane="generation-pane",
        observe=observe_reflection,
    ),
    Lesson(
        title="Encoders, decoders, the causal mask",
        text="Decoders (GPT) mask the future and predict the next token; encoders (BERT) see the whole sentence; "
        "encoder–decoders (the 2017 Transformer, T5) decode with cross-attention into an encoded input.",
        task="u: take the mask off (an encoder's self-attention), and on again",
        predict="Could a model without the mask learn next-token prediction?",
        why="A decoder learns next-token prediction at every position of a text in one parallel pass; the mask "
        "keeps that honest: position i must not see token i+1, its answer. Generating, it only appends, so "
        "earlier positions never change (what the KV cache needs). An encoder has no mask: each token sees both "
        "sides, good for understanding (BERT fills in masked words), not for cheap generation. An "
        "encoder–decoder decodes with a mask plus cross-attention into the encoded source. Today's LLMs are "
        "decoders: GPT-2 plus RMSNorm, rotary positions, gated MLPs, grouped-query attention.",
        check="Why can an encoder not generate text as cheaply as a decoder?",
        answer="Each new token changes what every earlier token sees (they attend to it), so every position must be "
        "recomputed at each step: no KV cache.",
        screen="block_lab",
        pane="lab-attention-pane",
        observe=observe_encoder_decoder,
        lab=BlockLabConfig(),
    ),
    Lesson(
        title="GPT-2's block vs the modern block",
        text="Llama-family models (SmolLM2, Llama, Qwen, Mistral) keep GPT-2's pre-norm block and swap four parts: "
        "RMSNorm, rotary positions (RoPE), a gated SwiGLU MLP, fewer key/value heads (GQA). This is GPT-2's block.",
        task="O: RMSNorm · U: positions · y: SwiGLU · H: KV heads, one at a time",
        predict="4 heads share 2 key/value heads: what share of the KV cache goes?",
        why="Each key swaps one part and redraws no other weight; the lines under the panes say what it changed. H: "
        "pairs of query heads share one key/value head, so a token keeps half the keys and values: 512 → 256 B/token "
        "here; SmolLM2 has 3 for its 9 heads (11,520 numbers a token, not 34,560). U: RoPE turns q and k by their "
        "positions, so a score depends only on their distance: the same q·k wherever the pair sits. O: RMSNorm "
        "rescales without centring (no mean, no bias). y: SwiGLU gates the MLP with a third matrix, so Llamas shrink "
        "d_ff to about 8/3·d_model (SmolLM2: 1,536 for 576).",
        check="RoPE turns q by m·θ and k by n·θ: why does their score depend only on m − n?",
        answer="Rotating both vectors leaves their dot product depending on the angle between them, (m − n)·θ per "
        "pair: where the pair sits cancels out.",
        screen="block_lab",
        pane="lab-config-pane",
        observe=observe_modern_block,
        lab=GPT2_LAB,
    ),
    Lesson(
        title="A real model's heads",
        text="Trained heads specialise: attention sinks (over half on token 0), previous-token heads, induction heads "
        "(A B … A → B: after A again, look at B). The prompt is now ten random words said twice.",
        task="n: one more token · h: all heads, o sorts by sink, prev, ind",
        predict="Of SmolLM2's 270 heads, how many put over half on token 0?",
        why="On this prompt (23 tokens) tfund's engine finds in SmolLM2 (Q4_1) 158 of 270 heads sinks (59%): a head "
        "with nothing to read parks its weight on token 0, since softmax must put it somewhere. B17.H1 reads the "
        "previous token (prev 0.93); B19.H7 is an induction head (ind 0.94): in the second copy it looks at the "
        "word after the current one's first copy, which predicts what comes next. Uniform attention scores 0.12 "
        "and 0.06. The toy's 36 heads stay diffuse: no sink, prev ≤ 0.07, ind ≤ 0.03 (uniform 0.06, 0.03).",
        check="At the second copy of a word, where does an induction head look, and why does that help?",
        answer="At the token that followed the word's first copy: what came next last time is the best guess for "
        "the next token (A B … A → B).",
        screen=None,
        pane="attention-pane",
        observe=observe_real_heads,
        prompt=HEADS_PROMPT,
    ),
    Lesson(
        title="The toy against a real model",
        text="The notebook compares its toy with GPT-2. Here the toy faces SmolLM2-135M (30 blocks, a 49,152-token "
        "vocabulary, trained on far more text), both reading the same text.",
        task="n: step both · g: run · f: independent texts · r: start again",
        predict="Will a real model agree with the toy on the next token?",
        why="Their tokenizers differ, so ids cannot be compared: each side's 50 likeliest tokens are keyed by their text, "
        "the rest pooled as 'other', and B reads A's text cut its own way (' Hazel' is ' Haz' + 'el' to SmolLM2). On the "
        "default prompt, both greedy, 32 steps: top-1 agreed 4 times, KL at T=1 averaged 8.2 nats. The toy is sure where "
        "its stories are templated (p 1.00 for ',' after a name); SmolLM2 spreads over real English (' girl' 0.85 after "
        "' a little'). Text KL also counts words cut differently: read the texts and top-1 first.",
        check="Why can't the two next-token distributions be compared id by id?",
        answer="Each model has its own vocabulary: an id is a different piece of text on each side, and they cut words at "
        "different places; only the text means the same to both.",
        screen="compare",
        pane="cmp-strip",
        observe=observe_real_model,
        model_b="smollm2",
    ),
    Lesson(
        title="Quantization: what 8 and 4 bits cost",
        text="llama.cpp stores weights in blocks of 32 with one scale: Q8_0 keeps 8 bits a weight, Q4_0 4. B is the toy with "
        "its matrices rounded so (norms and biases stay float32; the unembedding Q8_0).",
        task="n: step both · u: the next type, 4 presses to Q4_0 · r: start again",
        predict="At 8, then 4 bits a weight: will the toy's next token change?",
        why="Each weight is rounded to one of 255 levels (Q8_0) or 16 (Q4_0) spaced by its block's scale. On the toy "
        "(default prompt, 64 steps at T 0.8, seed 0) Q8_0 moved the next-token distribution by 2.7e-6 nats on average, "
        "Q4_0 by 1.3e-4 (about 50× more, still negligible), and the top token never changed (64/64). Q4_0 moved the "
        "candidates below it: the top five changed order in 26 of 64 steps (Q8_0: 2). A real model is touchier: "
        "SmolLM2 at Q4_0 (re-quantized from its Q4_1) gave about 0.5 nats, top-1 in 16 of 32 steps.",
        check="Why does the top token survive Q4_0 here although the KL grew about 50×?",
        answer="The KL is still tiny: rounding moved the top token's p by 0.018 at most, and even its narrowest lead over "
        "the second (0.008) held; the order changed only below it, within the top five.",
        screen="compare",
        pane="cmp-strip",
        observe=observe_quantized,
        quantize_b="q8_0",
    ),
)


def open_lesson(app: Any, lesson: Lesson) -> None:
    """Back to the main screen, then the lesson's screen with its starting state."""
    while len(app.screen_stack) > 1:
        app.pop_screen()
    if lesson.prompt is not None and app.session.prompt != lesson.prompt:
        app.session.set_prompt(lesson.prompt)
    if lesson.screen is not None:
        model_b = "toy" if lesson.model_b == app.session.model_name else lesson.model_b  # the real model loaded: B is the toy
        app.open_screen(lesson.screen, lab=lesson.lab, model_b=model_b, quantize_b=lesson.quantize_b)
