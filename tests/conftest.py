"""Shared fixtures and helpers: the shipped toy model, random-init GPT-2 models built locally (no hub),
a tiny BERT and a byte-level BPE trained here, and `wait_until` / `wait_until_async` (poll a condition
with a timeout instead of sleeping a fixed time)."""

import asyncio
import os
import time

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import BertConfig, BertModel, BertTokenizerFast, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from engine.model.gpt2 import GPT2Numpy
from engine.runtime.loading import BLAS_THREAD_ENV, load_model
from engine.tools.factories import random_gpt2
from engine.views.tokenization import EXAMPLES, load_tokenizer

WAIT_TIMEOUT_S = 60  # a guard against hangs, not a timing assertion

# The test models are tiny: one intra-op thread is 15-20x faster than two on this shared 2-core machine
# (a toy step+undo took 3.5 ms vs 50-70 ms under load), and pytest-xdist's workers then do not fight
# over the cores. Nothing tested depends on the thread count; the processes tests start keep torch's default.
torch.set_num_threads(1)
# The engine's thread policy, not the caller's environment, sets the NumPy engine's BLAS threads (the
# screens show "numpy · 1 thread" for the toy, and the snapshots are drawn with it).
for name in BLAS_THREAD_ENV:
    os.environ.pop(name, None)

# Text the tiny BERT's WordPiece and the local byte-level BPE are trained on.
CORPUS = [example.text for example in EXAMPLES] + [
    "The baker walked to the market and bought flour.",
    "Пекарь пошёл на рынок и купил муку.",
    "面包师去市场买了面粉。",
]


def wait_until(condition, what: str, timeout: float = WAIT_TIMEOUT_S, interval: float = 0.05):
    """Poll `condition()` until it returns something truthy, and return that; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


async def wait_until_async(condition, what: str, timeout: float = WAIT_TIMEOUT_S, interval: float = 0.05, pause=None):
    """`wait_until` for coroutines: `pause(interval)` (default asyncio.sleep) between polls, so the
    event loop (a Pilot's app, an aiohttp client) runs meanwhile. `condition` may be a coroutine function."""
    pause = pause or asyncio.sleep
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await pause(interval)


def sampler_of(app):
    """The main screen's live sampler (on the engine thread's handler), or None before it loaded."""
    return getattr(app.session.engine.handler, "sampler", None)


def replay_of(app):
    """The main screen's replay session (engine.views.replay.ReplaySession), or None."""
    return getattr(app.session.engine.handler, "replay", None)


def random_gpt2_dir(path, tokenizer, seed):
    """A random 2-layer GPT-2 sized to `tokenizer`, saved with it."""
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=len(tokenizer))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture
def anyio_backend():
    """Pilot tests run on asyncio."""
    return "asyncio"


@pytest.fixture(scope="module")
def toy():
    """The embedded toy model on the CPU (loaded once per test module)."""
    return load_model("toy", device="cpu")


@pytest.fixture(scope="session")
def toy_tokenizer():
    """The toy's tokenizer through transformers (what save_pretrained and the tokenization view take)."""
    return load_tokenizer("toy")


@pytest.fixture(scope="session")
def tiny_hf():
    """2 layers, 4 heads, 64 wide, vocab 256, context 64; fp32, eager attention, eval mode."""
    return random_gpt2("tiny", seed=1)


@pytest.fixture(scope="session")
def tiny_numpy(tiny_hf):
    return GPT2Numpy.from_hf(tiny_hf)


@pytest.fixture(scope="session")
def short_context_hf():
    """The tiny shape with a 24-position context, to reach the last positions cheaply."""
    return random_gpt2("tiny", seed=2, n_positions=24)


@pytest.fixture(scope="module")
def short_context_toy(toy_tokenizer, tmp_path_factory):
    """A random GPT-2 with the toy's tokenizer and a 24-position context, loaded: its window slides after a few steps."""
    path = tmp_path_factory.mktemp("short_context")
    random_gpt2("tiny", seed=3, n_positions=24, vocab_size=len(toy_tokenizer)).save_pretrained(path)
    toy_tokenizer.save_pretrained(path)
    return load_model(str(path), device="cpu")


@pytest.fixture(scope="session")
def tiny_dir(tiny_hf, tmp_path_factory):
    """The tiny model saved with save_pretrained (config.json + model.safetensors)."""
    path = tmp_path_factory.mktemp("tiny_gpt2")
    tiny_hf.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def gpt2_small_hf():
    """GPT-2-small-shaped (124M: 12 layers, 12 heads, 768 wide, vocab 50257), random init, seed 0."""
    return random_gpt2("gpt2", seed=0)


@pytest.fixture(scope="session")
def gpt2_small_numpy(gpt2_small_hf):
    return GPT2Numpy.from_hf(gpt2_small_hf)


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory):
    """A tiny BERT (2 layers, 4 heads) with a WordPiece tokenizer trained here on multilingual text."""
    path = tmp_path_factory.mktemp("tiny_bert")
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=False)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=600, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    wordpiece.train_from_iterator(CORPUS * 3, trainer)
    tokenizer = BertTokenizerFast(tokenizer_object=wordpiece, model_max_length=64)
    tokenizer.save_pretrained(path)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        BertModel(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def local_bpe(tmp_path_factory):
    """A byte-level BPE trained here (GPT-2 style), saved and loaded back as a user's directory."""
    path = tmp_path_factory.mktemp("bpe")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=500, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<|endoftext|>"])
    bpe.train_from_iterator(CORPUS * 3, trainer)
    PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>").save_pretrained(path)
    return load_tokenizer(str(path))
