"""`tfund inspect`: the next token intact and ablated, KL, top-token flip, and direct logit attribution.

Plain data in, plain data out: `inspect_context` runs an Inspector (engine.runtime.interventions) over
token ids and returns the JSON report; `format_inspect` turns a report into the text table.
Definitions of the ablations and of the attribution: engine.model.interventions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.events import counted
from engine.model.interventions import Ablation, Attribution
from engine.model.sampling import kl_divergence, raw_probs, top_ids
from engine.runtime.interventions import Inspector

BAR_WIDTH = 12  # characters on each side of the attribution chart's zero line


def top_entries(probs: np.ndarray, tokenizer: Any, n: int) -> list[dict]:  # [V] -> [{"id", "text", "p"}]
    """The n most likely tokens, by probability then id."""
    return [{"id": int(i), "text": tokenizer.decode([int(i)]), "p": float(probs[i])} for i in top_ids(probs, n)]


def attribution_json(attribution: Attribution, tokenizer: Any) -> dict:
    return {
        "token": tokenizer.decode([attribution.token_id]),
        "token_id": attribution.token_id,
        "logit": attribution.logit,
        "components": attribution.components(),
        "bias": attribution.bias,
    }


def prompt_ids(model: Any, prompt: str, n_positions: int) -> list[int]:
    """The prompt's token ids (the model's start token for an empty prompt), its last n_positions kept."""
    ids = model.tokenizer.encode(prompt, add_special_tokens=False) or [model.start_id]
    return ids[-n_positions:]


def inspect_context(
    inspector: Inspector,
    tokenizer: Any,
    ids: list[int],
    ablations: Sequence[Ablation] = (),
    mode: str = "zero",
    top_n: int = 5,
    reference_ids: list[int] | None = None,
) -> dict:
    """The report: {"top", "ablated_top", "kl", "flipped", "attribution", ...} for the token after `ids`.

    `attribution` is the intact run's, for its top token; with ablations, `ablated_attribution` is
    the ablated run's for the same token. Without ablations the ablated side equals the intact one.
    A mean ablation averages over `reference_ids` (a reference text's tokens) when given, else over
    `ids`; `mean_over` says which: "context" or {"text", "tokens"}.
    """
    ablations = tuple(dict.fromkeys(ablations))  # each component once, in the order given
    over_reference = mode == "mean" and reference_ids is not None and ablations
    means = inspector.reference_means(reference_ids, ablations) if over_reference else None
    intact = inspector.run(ids)
    ablated = inspector.run(ids, ablations, mode, means) if ablations else intact
    p, q = raw_probs(intact.logits), raw_probs(ablated.logits)  # [V], [V]
    top_id = int(np.argmax(intact.logits))
    report = {
        "engine": inspector.engine,
        "prompt_tokens": len(ids),
        "ablations": [a.spec for a in ablations],
        "mode": mode,
        **({"mean_over": mean_over(tokenizer, reference_ids)} if mode == "mean" else {}),
        "top": top_entries(p, tokenizer, top_n),
        "ablated_top": top_entries(q, tokenizer, top_n),
        "kl": kl_divergence(p, q) if ablations else 0.0,
        "flipped": top_id != int(np.argmax(ablated.logits)),
        "attribution": attribution_json(inspector.attribution(intact, top_id), tokenizer),
    }
    if ablations:
        report["ablated_attribution"] = attribution_json(inspector.attribution(ablated, top_id), tokenizer)
    return report


def mean_over(tokenizer: Any, reference_ids: list[int] | None) -> str | dict:
    """What a mean ablation averaged over: "context", or the reference text and its token count."""
    return "context" if reference_ids is None else {"text": tokenizer.decode(reference_ids), "tokens": len(reference_ids)}


def mode_label(report: dict) -> str:  # "zero", "mean over the context", "mean over a 12-token reference text"
    over = report.get("mean_over")
    if over is None:
        return report["mode"]
    return "mean over the context" if over == "context" else f"mean over a {over['tokens']}-token reference text"


def shown(text: str) -> str:  # a token's text, quoted, whitespace and control characters visible
    return repr(text)


def bar(value: float, scale: float) -> str:
    """A signed bar: negative to the left of the zero line, positive to the right."""
    n = 0 if scale <= 0 else min(BAR_WIDTH, round(abs(value) / scale * BAR_WIDTH))
    left = ("█" * n if value < 0 else "").rjust(BAR_WIDTH)
    right = ("█" * n if value > 0 else "").ljust(BAR_WIDTH)
    return f"{left}│{right}"


def format_inspect(report: dict) -> str:
    ablations = report["ablations"]
    lines = [
        f"{report.get('model', '')} · engine {report['engine']} · {counted(report['prompt_tokens'], 'prompt token')} · "
        + (f"ablated ({mode_label(report)}): {', '.join(ablations)}" if ablations else "no ablation")
    ]
    lines.append(f"{'next token':<4} {'intact':>26}   {'ablated':>26}")
    for rank, (a, b) in enumerate(zip(report["top"], report["ablated_top"]), start=1):
        lines.append(f"{rank:>4}  {shown(a['text']):>18} {a['p']:6.3f}   {shown(b['text']):>18} {b['p']:6.3f}")
    flip = f"yes ({shown(report['top'][0]['text'])} -> {shown(report['ablated_top'][0]['text'])})" if report["flipped"] else "no"
    lines.append(f"KL(intact‖ablated) {report['kl']:.6f} nats · top token flips: {flip}")
    attribution = report["attribution"]
    ablated = report.get("ablated_attribution")
    lines.append("")
    lines.append(
        f"direct logit attribution of {shown(attribution['token'])} (id {attribution['token_id']}), logit {attribution['logit']:.4f}"
        + (f"; ablated {ablated['logit']:.4f}" if ablated else "")
    )
    parts = attribution["components"]
    scale = max([abs(v) for v in parts.values()] + [abs(attribution["bias"])])
    rows = [*parts.items(), ("ln_f bias", attribution["bias"])]
    ablated_parts = {**ablated["components"], "ln_f bias": ablated["bias"]} if ablated else {}
    for name, value in rows:
        indent = "  " if ".H" in name else ""
        extra = f"  {ablated_parts[name]:+9.4f}" if ablated else ""
        lines.append(f"  {indent + name:<11} {value:+9.4f}{extra}  {bar(value, scale)}")
    lines.append(f"  {'sum':<11} {sum(v for k, v in rows if '.H' not in k):+9.4f}  (heads are part of their layer's attn)")
    return "\n".join(lines)
