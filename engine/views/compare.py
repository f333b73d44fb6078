"""Two samplers on the same prompt, side by side: per-step KL divergence and top-1 agreement.

    session = CompareSession(Sampler(toy, cfg_a), Sampler(gpt2, cfg_b))   # or one model at two temperatures
    session.set_prompt("In a small village,")
    st = session.step()    # CompareStep: both events, kl (nats), top1_agree

Shared context (the default, follow="a"): A samples its token and B is forced to take the same one, so
both models always read the same text and every step compares two predictions *for the same context*;
that is what makes a per-step KL meaningful. follow="b" mirrors it; follow=None lets each sample its
own token (the contexts drift apart after the first disagreement, and the KL then compares predictions
for different texts).

Vocabularies. When both tokenizers have the same vocabulary (toy vs toy, GPT-2 vs GPT-2 at another
temperature) the full next-token distributions are compared id by id. When they differ (toy vs GPT-2)
the ids mean different things, so the comparison moves to text ("text" mode): each side's top
candidates are keyed by their decoded text (identical texts summed), everything else is pooled in one
"other" bucket, and KL/top-1 are computed on those pooled distributions. Forcing the follower then
means feeding it the leader's new text, tokenized its own way (zero tokens while the leader's piece is
an incomplete character). Text mode is an approximation: a word one tokenizer emits whole may be two
pieces for the other.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.events import Candidate, SamplingConfig, TokenEvent
from engine.model.sampling import kl_divergence
from engine.runtime.sampler import Sampler, top_candidates
from engine.views.pieces import TOKEN_MARKERS, visible

TEXT_TOP_N = 50  # candidates per side kept in text mode; the rest of the mass goes to "other"
SHOWN_CANDIDATES = 10  # candidates per side carried in each CompareStep


def compare_step(p_a: np.ndarray, p_b: np.ndarray) -> tuple[float, bool]:  # [V], [V] -> KL(a||b) nats, top-1 agree
    """KL(a || b) in nats (engine.model.sampling.kl_divergence: b floored at 1e-10 where a > 0), and
    whether both put their maximum on the same token."""
    return kl_divergence(p_a, p_b), int(np.argmax(p_a)) == int(np.argmax(p_b))


def text_distributions(cands_a: list[Candidate], cands_b: list[Candidate], warped: bool) -> tuple[np.ndarray, np.ndarray]:
    """Two distributions over the union of both sides' candidate texts plus one "other" bucket (last)."""

    def by_text(cands: list[Candidate]) -> dict[str, float]:
        pooled: dict[str, float] = {}
        for c in cands:
            pooled[c.text] = pooled.get(c.text, 0.0) + (c.p if warped else c.p_raw)
        return pooled

    a, b = by_text(cands_a), by_text(cands_b)
    keys = list(dict.fromkeys([*a, *b]))  # insertion order: a's texts first
    p_a = np.array([a.get(k, 0.0) for k in keys] + [0.0])  # [K + 1]
    p_b = np.array([b.get(k, 0.0) for k in keys] + [0.0])  # [K + 1]
    p_a[-1], p_b[-1] = max(0.0, 1.0 - p_a.sum()), max(0.0, 1.0 - p_b.sum())
    return p_a / p_a.sum(), p_b / p_b.sum()


def same_top_text(p_a: np.ndarray, p_b: np.ndarray) -> bool:  # [K + 1], [K + 1] ("other" last) -> bool
    """Both put their largest probability on the same candidate text; the pooled "other" bucket is no text."""
    return int(np.argmax(p_a[:-1])) == int(np.argmax(p_b[:-1]))


def same_vocabulary(sampler_a: Sampler, sampler_b: Sampler) -> bool:
    """True when ids mean the same text for both (same logits width and the same token -> id map)."""
    if sampler_a.model is sampler_b.model:
        return True
    if sampler_a.info.vocab_size != sampler_b.info.vocab_size:
        return False
    return sampler_a.tokenizer.get_vocab() == sampler_b.tokenizer.get_vocab()


@dataclass
class CompareStep:
    """One step of both samplers."""

    index: int  # 0 for the first generated token
    event_a: TokenEvent | None  # None only in text mode, when a follower had no complete text to take
    event_b: TokenEvent | None
    kl: float  # KL(a || b), nats, between the distributions the tokens were drawn from (after warping)
    kl_raw: float  # the same between the raw distributions (temperature 1): the models' own beliefs
    top1_agree: bool  # both distributions put their maximum on the same token (same text in text mode)
    text_a: str  # the text a added this step
    text_b: str
    candidates_a: list[Candidate]  # a's top candidates for this step (before its token was taken)
    candidates_b: list[Candidate]


class CompareSession:
    """Drives two Samplers (two models, or one model with two settings) on the same prompt."""

    def __init__(self, sampler_a: Sampler, sampler_b: Sampler, follow: str | None = "a"):
        if follow not in ("a", "b", None):
            raise ValueError(f"follow must be 'a', 'b' or None (got {follow!r})")
        if sampler_a is sampler_b:
            raise ValueError("compare needs two Sampler instances (they may share one model)")
        self.a = sampler_a
        self.b = sampler_b
        self.follow = follow
        self.mode = "vocab" if same_vocabulary(sampler_a, sampler_b) else "text"
        self.steps: list[CompareStep] = []

    @property
    def done(self) -> bool:
        """A model produced its end-of-text token (the leader's, in shared-context mode)."""
        if self.follow == "a":
            return self.a.done
        if self.follow == "b":
            return self.b.done
        return self.a.done or self.b.done

    def set_prompt(self, text: str) -> None:
        self.a.set_prompt(text)
        self.b.set_prompt(text)
        self.steps = []

    def step(self) -> CompareStep:
        """Measure both next-token distributions, then advance both (see the module docstring)."""
        # 1. both distributions for the current (shared) context
        raw_a, warped_a = self.a.next_distributions()  # [V_a], [V_a]
        raw_b, warped_b = self.b.next_distributions()  # [V_b], [V_b]
        top_n = TEXT_TOP_N if self.mode == "text" else SHOWN_CANDIDATES
        cands_a = top_candidates(self.a.token_text, raw_a, warped_a, top_n)
        cands_b = top_candidates(self.b.token_text, raw_b, warped_b, top_n)
        # 2. KL and top-1 on ids, or on pooled candidate texts
        if self.mode == "vocab":
            kl, agree = compare_step(warped_a, warped_b)
            kl_raw, _ = compare_step(raw_a, raw_b)
        else:
            p_a, p_b = text_distributions(cands_a, cands_b, warped=True)  # [K + 1] x2, "other" last
            kl, agree = kl_divergence(p_a, p_b), same_top_text(p_a, p_b)
            kl_raw = kl_divergence(*text_distributions(cands_a, cands_b, warped=False))
        # 3. advance: the leader samples, the follower takes the same token (or text)
        if self.follow == "b":
            event_b = self.b.step()
            event_a, text_a = self.take_same(self.a, event_b)
            text_b = event_b.text
        elif self.follow == "a":
            event_a = self.a.step()
            event_b, text_b = self.take_same(self.b, event_a)
            text_a = event_a.text
        else:
            event_a, event_b = self.a.step(), self.b.step()
            text_a, text_b = event_a.text, event_b.text
        result = CompareStep(
            index=len(self.steps),
            event_a=event_a,
            event_b=event_b,
            kl=kl,
            kl_raw=kl_raw,
            top1_agree=agree,
            text_a=text_a,
            text_b=text_b,
            candidates_a=cands_a[:SHOWN_CANDIDATES],
            candidates_b=cands_b[:SHOWN_CANDIDATES],
        )
        self.steps.append(result)
        return result

    def take_same(self, follower: Sampler, leader_event: TokenEvent) -> tuple[TokenEvent | None, str]:
        """Force the follower onto the leader's token (same vocabulary) or onto its new text; its last event and
        the text it took (in text mode, all of its tokens' text: the leader's one piece may be several here)."""
        if self.mode == "vocab":
            event = follower.force(leader_event.token_id)
            return event, event.text
        if leader_event.eos:
            return None, ""  # the leader ended; its end-of-text string means nothing to the other tokenizer
        events = [follower.force(token_id) for token_id in follower.tokenizer.encode(leader_event.text, add_special_tokens=False)]
        return (events[-1] if events else None), "".join(event.text for event in events)

    def run(self, n: int, cancel: threading.Event | None = None) -> Iterator[CompareStep]:
        """Up to n steps; stops at end-of-text or when `cancel` is set."""
        for _ in range(n):
            if (cancel is not None and cancel.is_set()) or self.done:
                return
            yield self.step()


# ---- the `tfund compare` command -------------------------------------------------------------
def compare_run(
    model_a: Any,
    model_b: Any,
    prompt: str,
    n: int,
    config_a: SamplingConfig,
    config_b: SamplingConfig,
    follow: str | None = "a",
    device: str = "auto",
    cancel: threading.Event | None = None,
    quantize_b: str | None = None,
) -> dict:
    """Run a CompareSession for n steps and return plain JSON data (`tfund compare --json`).

    model_a / model_b: a LoadedModel, or a name/path for load_model (the same name is loaded once, so
    "one model at two temperatures" shares the weights). quantize_b ("q4_0", ...): B's matrices go through
    that type first (engine.runtime.loading.quantized_model; ModelLoadError for B's own type).
    """
    from engine.runtime.loading import load_model, quantized_model

    if isinstance(model_a, str):
        model_a = load_model(model_a, device=device)
    if isinstance(model_b, str):
        model_b = model_a if model_b == model_a.name else load_model(model_b, device=device)
    quantization = None
    if quantize_b is not None:
        model_b, report = quantized_model(model_b, quantize_b)
        quantization = report.as_dict()
    session = CompareSession(Sampler(model_a, config_a), Sampler(model_b, config_b), follow=follow)
    session.set_prompt(prompt)
    steps = [step_json(st) for st in session.run(n, cancel)]
    kls = [st["kl"] for st in steps]
    return {
        "model_a": model_a.name,
        "model_b": model_b.name,
        "quantize_b": quantization,  # {"type", "from", "matrices", "kept_f32", "note"} or None
        "prompt": prompt,
        "mode": session.mode,
        "follow": follow,
        "settings_a": session.a.config.as_dict(),  # as run
        "settings_b": session.b.config.as_dict(),
        "steps": steps,
        "text_a": session.a.text,
        "text_b": session.b.text,
        "mean_kl": float(np.mean(kls)) if kls else 0.0,
        "mean_kl_raw": float(np.mean([st["kl_raw"] for st in steps])) if steps else 0.0,
        "top1_agreement": sum(st["top1_agree"] for st in steps) / len(steps) if steps else 0.0,
    }


def step_json(st: CompareStep, top: int = 3) -> dict:
    def token(event: TokenEvent | None) -> dict | None:
        return {"id": event.token_id, "text": event.text} if event else None

    def cands(candidates: list[Candidate]) -> list[dict]:
        return [{"id": c.token_id, "text": c.text, "p_raw": round(c.p_raw, 6), "p": round(c.p, 6)} for c in candidates[:top]]

    return {
        "step": st.index,
        "a": token(st.event_a),
        "b": token(st.event_b),
        "text_a": st.text_a,
        "text_b": st.text_b,
        "kl": round(st.kl, 6),
        "kl_raw": round(st.kl_raw, 6),
        "top1_agree": st.top1_agree,
        "top_a": cands(st.candidates_a),
        "top_b": cands(st.candidates_b),
    }


def format_compare_table(result: dict) -> str:
    """The human-readable report of compare_run's result."""

    def settings(s: dict) -> str:
        return f"temperature {s['temperature']:.2f}, top-k {s['top_k']}, top-p {s['top_p']:.2f}, seed {s['seed']}"

    def cell(shown: str, width: int) -> str:
        return (shown[: width - 1] + "…") if len(shown) > width else shown.ljust(width)

    def top(cands: list[dict]) -> str:
        return f"{visible(cands[0]['text'], **TOKEN_MARKERS)} {cands[0]['p']:.2f}" if cands else ""

    context = {
        "a": "shared context (A samples, B takes the same token)",
        "b": "shared context (B samples, A takes the same token)",
        None: "independent (each samples its own token)",
    }[result["follow"]]
    lines = [
        f"A  {result['model_a']}  ({settings(result['settings_a'])})",
        f"B  {result['model_b']}  ({settings(result['settings_b'])})",
        *([quantization_line(result["quantize_b"])] if result.get("quantize_b") else []),
        f"{context}; compared on {'token ids' if result['mode'] == 'vocab' else 'decoded candidate text (docs/DEFINITIONS.md)'}",
        "",
        f"{'step':>4}  {'A token':<14}{'B token':<14}{'KL(A‖B)':>9}{'KL T=1':>9}  {'top-1':<6}{'A top':<18}B top",
    ]
    for st in result["steps"]:
        lines.append(
            f"{st['step']:>4}  {cell(visible(st['text_a'], **TOKEN_MARKERS), 13)} {cell(visible(st['text_b'], **TOKEN_MARKERS), 13)} {st['kl']:>9.4f}{st['kl_raw']:>9.4f}  "
            f"{'yes' if st['top1_agree'] else 'no':<6}{cell(top(st['top_a']), 17)} {top(st['top_b'])}"
        )
    n = len(result["steps"])
    agree = sum(st["top1_agree"] for st in result["steps"])
    lines += [
        "",
        f"mean KL {result['mean_kl']:.4f} nats (at T=1, the models' own beliefs: {result['mean_kl_raw']:.4f}); top-1 agreement {agree}/{n}",
        f"A: {result['text_a']}",
        f"B: {result['text_b']}",
    ]
    return "\n".join(lines)


def quantization_line(report: dict) -> str:
    """What --quantize-b did to B, in one line (engine.model.quantization)."""
    kept = f"; {len(report['kept_f32'])} kept float32 (rows not a multiple of 32)" if report["kept_f32"] else ""
    source = report["note"] or f"from {report['from']}"
    return (
        f"   B's {report['matrices']} matrices rounded to {report['type']} ({source}; the unembedding Q8_0; norms, biases "
        f"and positions float32{kept})"
    )
