"""Train the embedded toy model: corpus -> ByteLevel BPE tokenizer -> tiny GPT-2 -> safetensors.

    metrics = train_toy("engine/toy/model", steps=1200, seed=0, progress=lambda step, total, loss: ...)

Everything is built here from the project's own generator (engine/toy/corpus.py); nothing is
downloaded. Randomness: the corpus uses its own random.Random(seed); batches use a torch.Generator;
weight init (and dropout, when on) draw from torch's global generator, which is forked and seeded for
the duration of the call and restored afterwards, so the caller's random stream is untouched.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from engine.toy.corpus import END_OF_TEXT, generate_corpus

Progress = Callable[[int, int, float], None]  # (step, total_steps, training loss)


@dataclass
class ToyConfig:
    n_stories: int = 2500  # ~1.4 MB, ~320k tokens: fewer stories get memorised instead of learned
    vocab_size: int = 2048  # BPE ceiling; the corpus has ~600 words, so BPE stops near 1.5k tokens
    n_layer: int = 6  # deep enough for the logit lens and the Layers chart to show representations evolve
    n_head: int = 6  # 32-wide heads
    n_embd: int = 192  # 3.0M parameters: 12 MB of float32 weights
    n_positions: int = 256  # context size: one whole story (<= ~170 tokens) and the start of the next
    block_size: int = 256  # training window: a whole story, its end-of-text and the next story's start
    batch_size: int = 8  # windows per step: 2048 tokens per step
    steps: int = 3000  # ~19 passes over the corpus; 0.73 s each on 2 idle cores (36 min), 0.99 s on one (49 min)
    learning_rate: float = 2e-3  # peak; a small model tolerates a large step
    min_lr_ratio: float = 0.1  # cosine decays to 10% of the peak
    warmup_steps: int = 100  # linear warm-up from 0
    weight_decay: float = 0.1  # AdamW decay; with dropout it keeps six blocks from memorising the stories
    dropout: float = 0.1  # without it six blocks memorise: train 0.28 but held-out 0.398 nats/token (with it: 0.336, 0.355)
    heldout_fraction: float = 0.05  # the last 5% of stories, never seen by the tokenizer or the model
    progress_every: int = 10  # steps between progress callbacks
    threads: int = 2  # torch CPU threads (the project assumes 2 cores); the shipped weights were trained with 1


def train_tokenizer(stories: list[str], config: ToyConfig) -> Any:
    """ByteLevel BPE (GPT-2 style: any text round-trips), wrapped as a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(stories, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        model_max_length=config.n_positions,
        clean_up_tokenization_spaces=False,
    )


def encode_stories(tokenizer: Any, stories: list[str]) -> list[list[int]]:  # -> per story: ids + [eot]
    eot = tokenizer.eos_token_id
    return [ids + [eot] for ids in tokenizer(stories, add_special_tokens=False)["input_ids"]]


def story_starts(lengths: list[int], block_size: int) -> Any:  # [S] lengths -> [S'] starts in the stream
    """Where each story begins in the concatenated stream, keeping those a full block fits after."""
    import torch

    ends = torch.tensor(lengths).cumsum(0)  # [S]
    starts = ends - torch.tensor(lengths)  # [S]
    return starts[starts <= ends[-1] - block_size]


def random_batch(ids: Any, starts: Any, config: ToyConfig, generator: Any) -> Any:  # [N], [S] -> [B, T]
    """Windows that begin at a story's first token, so every name a story repeats is in view."""
    import torch

    picks = starts[torch.randint(0, len(starts), (config.batch_size,), generator=generator)]  # [B]
    return torch.stack([ids[s : s + config.block_size] for s in picks.tolist()])  # [B, T]


def heldout_batch(stories: list[list[int]], block_size: int) -> tuple[Any, Any]:  # -> [S, L] inputs, [S, L-1] targets
    """Each held-out story from its first token (as the model is prompted), cut to block_size,
    padded with END_OF_TEXT; padded targets are -100 (ignored by cross_entropy)."""
    import torch

    stories = [ids[:block_size] for ids in stories]
    length = max(len(ids) for ids in stories)
    inputs = torch.tensor([ids + [ids[-1]] * (length - len(ids)) for ids in stories])  # [S, L]
    targets = torch.tensor([ids[1:] + [-100] * (length - len(ids)) for ids in stories])  # [S, L-1]
    return inputs, targets


def next_token_loss(model: Any, inputs: Any, targets: Any) -> Any:  # [B, T], [B, T-1] -> mean nats per target
    import torch.nn.functional as F

    logits = model(input_ids=inputs).logits[:, :-1]  # [B, T-1, V]: position t predicts token t+1
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)


def heldout_loss(model: Any, inputs: Any, targets: Any) -> float:  # [S, L], [S, L-1] -> nats per token
    import torch

    model.eval()
    with torch.no_grad():
        return next_token_loss(model, inputs, targets).item()


def unigram_loss(train_ids: Any, targets: Any, vocab_size: int) -> float:  # [N], [S, L-1] -> nats per token
    """Cross-entropy of an add-one-smoothed unigram (counted on training tokens) on the held-out targets."""
    import torch

    counts = torch.bincount(train_ids, minlength=vocab_size).double() + 1.0  # [V]
    log_p = torch.log(counts / counts.sum())  # [V]
    scored = targets[targets != -100]  # [n] the tokens the model was scored on
    return float(-log_p[scored].mean())


def build_model(config: ToyConfig, tokenizer: Any) -> Any:
    from transformers import GPT2Config, GPT2LMHeadModel

    model_config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=config.n_positions,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        resid_pdrop=config.dropout,
        embd_pdrop=config.dropout,
        attn_pdrop=config.dropout,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return GPT2LMHeadModel(model_config)


def learning_rate(step: int, config: ToyConfig) -> float:
    """Linear warm-up, then cosine decay from the peak to min_lr_ratio * peak."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    floor = config.learning_rate * config.min_lr_ratio
    return floor + 0.5 * (config.learning_rate - floor) * (1 + math.cos(math.pi * min(progress, 1.0)))


def optimise(model: Any, ids: Any, starts: Any, config: ToyConfig, seed: int, progress: Progress | None) -> float:
    """AdamW with warm-up + cosine on random story-aligned windows; returns the last training loss."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    model.train()
    loss = float("nan")
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        batch = random_batch(ids, starts, config, generator)  # [B, T]
        step_loss = next_token_loss(model, batch, batch[:, 1:])
        optimizer.zero_grad(set_to_none=True)
        step_loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss = step_loss.item()
        done = step + 1
        if progress is not None and (done % config.progress_every == 0 or done == config.steps):
            progress(done, config.steps, loss)
    model.eval()
    return loss


def save_model(model: Any, tokenizer: Any, out_dir: Path) -> None:
    """config.json + model.safetensors + generation_config.json + tokenizer files; no pickle."""
    from transformers import GenerationConfig

    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def train_toy(
    out_dir: str | Path,
    steps: int = ToyConfig.steps,
    seed: int = 0,
    progress: Progress | None = None,
    **overrides: Any,
) -> dict:
    """Write the corpus, train the tokenizer and the model, save them into out_dir, return metrics.

    `overrides` are other ToyConfig fields (e.g. n_stories=30, n_layer=1, n_embd=32 for a quick test).
    Metrics (also in out_dir/training_metrics.json): heldout_loss and unigram_loss, in nats per token
    on the same held-out tokens; the last train_loss; steps, seconds, n_params, token counts, config.
    """
    import torch

    config = replace(ToyConfig(), steps=steps, **overrides)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(min(config.threads, previous_threads))
    try:
        stories = generate_corpus(config.n_stories, seed)
        n_train = len(stories) - max(1, round(len(stories) * config.heldout_fraction))
        tokenizer = train_tokenizer(stories[:n_train], config)
        train_stories = encode_stories(tokenizer, stories[:n_train])
        train_ids = torch.tensor([i for ids in train_stories for i in ids])  # [N]
        starts = story_starts([len(ids) for ids in train_stories], config.block_size)  # [S]
        inputs, targets = heldout_batch(encode_stories(tokenizer, stories[n_train:]), config.block_size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_model(config, tokenizer)
            train_loss = optimise(model, train_ids, starts, config, seed, progress)
        metrics = {
            "heldout_loss": heldout_loss(model, inputs, targets),
            "unigram_loss": unigram_loss(train_ids, targets, len(tokenizer)),
            "train_loss": train_loss,
            "steps": config.steps,
            "seconds": time.perf_counter() - started,
            "n_params": sum(p.numel() for p in model.parameters()),
            "train_tokens": len(train_ids),
            "heldout_tokens": int((targets != -100).sum()),
            "seed": seed,
            "config": asdict(config),
        }
        save_model(model, tokenizer, out)
        (out / "training_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        return metrics
    finally:
        torch.set_num_threads(previous_threads)
