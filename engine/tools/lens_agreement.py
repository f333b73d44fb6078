"""Logit-lens agreement per layer on the toy's held-out stories: how early does the model know its answer?

For every held-out position, the lens after block l (final layer norm + unembedding on that block's
residual stream) gives a top-1 token; its agreement is the share of positions where that token equals
the model's final prediction, and its accuracy the share where it equals the actual next token. The
last block's lens is the final prediction, so its agreement is 1 by definition. The held-out stories
are rebuilt from the model's training_metrics.json (corpus seed, story count, held-out share), as
engine.toy.train scored them: each from its first token, cut to the training window.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.model.transformer import NumpyLM
from engine.toy.corpus import generate_corpus


def heldout_stories(model_dir: Path) -> tuple[list[str], int]:
    """The stories the model never saw, and the training window, from its training_metrics.json."""
    metrics_path = model_dir / "training_metrics.json"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{metrics_path} not found: the lens benchmark needs a model made by tfund train-toy")
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    config = metrics["config"]
    stories = generate_corpus(config["n_stories"], metrics["seed"])
    n_train = len(stories) - max(1, round(len(stories) * config["heldout_fraction"]))
    return stories[n_train:], config["block_size"]


def lens_agreement(net: NumpyLM, stories_ids: list[list[int]]) -> dict:
    """Per block (1…L): the lens top-1's agreement with the final prediction and its next-token accuracy."""
    agree = np.zeros(net.n_layer)  # [L]
    correct = np.zeros(net.n_layer)  # [L]
    n_positions = 0
    for ids in stories_ids:
        _, captures = net.forward(ids, capture=True)
        resid = np.stack([captures[f"blocks.{i}.hook_resid_post"] for i in range(net.n_layer)])  # [L, T, d]
        guesses = net.lens(resid.reshape(-1, resid.shape[-1])).argmax(axis=-1).reshape(net.n_layer, -1)  # [L, T]
        final = guesses[-1]  # [T] the model's own prediction
        agree += (guesses[:, :-1] == final[None, :-1]).sum(axis=1)
        correct += (guesses[:, :-1] == np.asarray(ids[1:])[None, :]).sum(axis=1)
        n_positions += len(ids) - 1
    return {
        "positions": n_positions,
        "agreement": (agree / n_positions).round(4).tolist(),
        "accuracy": (correct / n_positions).round(4).tolist(),
    }


def bench_lens(model_dir: Path, tokenizer) -> dict:
    stories, block_size = heldout_stories(model_dir)
    eot = tokenizer.eos_token_id
    stories_ids = [(tokenizer.encode(story, add_special_tokens=False) + [eot])[:block_size] for story in stories]
    net = NumpyLM.from_dir(model_dir)
    return {"stories": len(stories), **lens_agreement(net, stories_ids)}


def format_lens_table(result: dict, label: str) -> str:
    lines = [
        f"logit lens on {label}: {result['stories']} held-out stories, {result['positions']} positions",
        "after block   agrees with the final prediction   next-token accuracy",
    ]
    for block, (agree, accuracy) in enumerate(zip(result["agreement"], result["accuracy"]), start=1):
        lines.append(f"{block:>11}   {agree:>30.1%}   {accuracy:>19.1%}")
    return "\n".join(lines)
