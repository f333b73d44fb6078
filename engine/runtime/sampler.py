"""Step-by-step sampling with everything a learner wants to see at each token.

    s = Sampler(load_model("toy"), SamplingConfig(temperature=0.8, seed=0))
    s.set_prompt("In a small village,")
    ev = s.step()      # TokenEvent (plain data)
    s.undo()           # the random stream does NOT rewind
    s.force(token_id)

Two engines sit behind the same API: transformers on torch (cpu/cuda/mps) and the from-scratch NumPy
engine (cpu), for GPT-2 and the Llama family. Sampling happens on the host in NumPy, so the probabilities shown are exactly the
ones sampled from.

The session's window (`n_positions`) is the model's context capped by ATTENTION_BUDGET (session_window).
When it is full it slides: the oldest tokens are dropped (a quarter of the window) and the rest are read
in again from position 0. A learned-position model (GPT-2) then sees the kept tokens at new absolute
positions; a rotary model (Llama) scores only the distance between a query and a key, so the kept
tokens relate to each other exactly as before and only the dropped ones are missing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from engine.events import AblationView, Candidate, LensEntry, ModelInfo, SamplingConfig, StepView, TokenEvent
from engine.model.head_stats import attention_matrix
from engine.model.sampling import entropy, kl_divergence, raw_probs, sample, top_ids, warp_probs
from engine.runtime.backends.base import ForwardOutput
from engine.runtime.decoding import next_piece, pieces_for, valid_utf8
from engine.runtime.engines import engine_device_problem, make_backend, scratch_backend
from engine.runtime.placement import placement_label

SLIDE_KEEP_FRACTION = 0.75  # after the window slides, this share of the window stays in context
ATTENTION_BUDGET = 512 * 2**20  # bytes of captured attention a session keeps (rows of every head, float16)
ATTENTION_DTYPE = np.float16  # how the rows are kept: within 2**-12 (2.4e-4) of float32's, far below a shown digit (0.01)
ATTENTION_ITEM_BYTES = np.dtype(ATTENTION_DTYPE).itemsize


def session_window(n_positions: int, n_layer: int, n_head: int, budget: int = ATTENTION_BUDGET) -> int:
    """The session's window: the model's context, capped so that the attention rows kept for time travel
    (L x H x T(T + 1)/2 float16s) stay within `budget`. GPT-2 small keeps its 1,024 (151 MB); a 30 x 9
    model (SmolLM2-135M, context 8,192) gets 1,409 tokens instead of 8,192 (18 GB)."""
    pairs = 2 * budget // (ATTENTION_ITEM_BYTES * n_layer * n_head)  # T (T + 1) may be this large: L H T (T + 1) / 2 * 2 bytes <= budget
    largest = int(((1 + 4 * pairs) ** 0.5 - 1) / 2)
    return max(2, min(n_positions, largest))


OnChosen = Callable[[int, str, float], None]  # (token_id, its text, its p at temperature 1): drawn, not read in yet


class GenerationDone(Exception):
    """step()/force() after the model produced its end-of-text token."""


def norms_and_cosines(resid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # [L + 1, d] -> [L + 1], [L]
    norms = np.linalg.norm(resid, axis=-1)  # [L + 1]
    dots = (resid[1:] * resid[:-1]).sum(axis=-1)  # [L]
    cosines = dots / np.maximum(norms[1:] * norms[:-1], 1e-12)  # [L]
    return norms.astype(np.float32), cosines.astype(np.float32)


def top_candidates(text_of: Callable[[int], str], p_raw: np.ndarray, p: np.ndarray, n: int) -> list[Candidate]:
    """The n most likely tokens before warping, with their probability after warping; text_of(id) labels them."""
    return [Candidate(int(i), text_of(int(i)), float(p_raw[i]), float(p[i])) for i in top_ids(p_raw, n)]


class LazyLens(Sequence):
    """A step's logit lens (LensEntry per layer), computed the first time anything reads it: a run that
    draws a few of its steps pays for the lens of those steps only."""

    def __init__(self, compute: Callable[[], list[LensEntry]]):
        self._compute: Callable[[], list[LensEntry]] | None = compute
        self._entries: list[LensEntry] = []

    def _read(self) -> list[LensEntry]:
        if self._compute is not None:
            self._entries, self._compute = self._compute(), None
        return self._entries

    def __getitem__(self, index):
        return self._read()[index]

    def __len__(self) -> int:
        return len(self._read())

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return "LazyLens(not computed)" if self._compute is not None else repr(self._entries)


class PositionView:
    """What the UI shows for one context position (kept per token so undo is free).

    Its attention is kept compactly, as its own float16 copy (`rows`): a forward's [L, H, T, T] capture
    is freed once its rows are copied out, and a full window's rows take half of what float32 would.
    float16 rounds a weight in [0, 1] to within 2**-12 = 2.4e-4 (relative 2**-11 = 4.9e-4): below what
    a screen shows (a colour level of the heatmaps is 1/32 of the scale, statistics show two decimals).
    """

    def __init__(self, attention: np.ndarray, lens: Sequence[LensEntry], norms: np.ndarray, cosines: np.ndarray):
        self.rows = np.array(attention, dtype=ATTENTION_DTYPE)  # [L, H, pos + 1] its own copy
        self.lens = lens  # a LazyLens at the last position of each forward, else empty
        self.norms = norms  # [L + 1]
        self.cosines = cosines  # [L]

    @property
    def attention(self) -> np.ndarray:  # [L, H, pos + 1] float32, converted when read
        return self.rows.astype(np.float32)


class Sampler:
    def __init__(
        self,
        model: Any,
        config: SamplingConfig | None = None,
        device: str | None = None,
        engine: str = "auto",
        top_n: int = 10,
    ):
        """`engine`: "numpy", "torch", or "auto" for the one the model was loaded for (model.engine)."""
        self.model = model
        self.tokenizer = model.tokenizer
        self.config = replace(config) if config else SamplingConfig()
        self.config.validate()
        if problem := engine_device_problem(engine, device):
            raise ValueError(problem)
        engine = model.engine if engine == "auto" else engine
        if device is not None and engine == "torch":
            model.hf_model.to(device)
        self.engine = engine
        self.top_n = top_n
        self.n_positions = session_window(
            model.info.n_positions, model.info.n_layer, model.info.n_head
        )  # the window; the model's own is info.n_positions
        self.backend, self.note = make_backend(engine, model, self.n_positions)  # note: why a fast path was given up, said once
        run_device = "cpu" if engine == "numpy" else placement_label(model.hf_model)
        self.info: ModelInfo = replace(model.info, device=run_device, engine=engine)
        self.texts: dict[int, str] = {}  # token id -> its text alone (candidates and lens labels), decoded once
        self.start_id = model.start_id  # what an empty prompt starts from
        self.eos_ids = frozenset(model.eos_ids)  # a generation stops at any of them
        self.rng = np.random.default_rng(self.config.seed)
        self.prompt = ""
        self.tokens: list[int] = []  # the context window: prompt (what remains of it) + generated
        self.pieces: list[str] = []  # streamed text piece per context token
        self.views: list[PositionView] = []  # per context token
        self.prompt_len = 0
        self.prompt_dropped = 0
        self.n_dropped = 0  # tokens of the full sequence before the window: a long prompt's start, then every slide
        self.n_generated = 0
        self.done = False
        self.generated_text: list[str] = []  # every generated piece, even those slid out of the window
        self._next_logits: np.ndarray | None = None  # [V] the intact model's, from the KV cache
        self.ablations: tuple = ()  # engine.model.interventions.Ablation: knocked out until cleared
        self.ablation_mode = "zero"
        self._ablated: tuple[np.ndarray, np.ndarray] | None = (
            None  # ([V] logits, [L + 1, d] residual stream) under the ablations, once computed
        )
        self._ablated_decoder: Any = None  # the ablated model's own KV cache (engine.runtime.interventions.AblatedDecoder)
        self._scratch: Any = None  # scratch_backend(), made on the first prediction_before()
        self._lock = threading.Lock()  # one sampler call at a time

    # ---- settings ----------------------------------------------------------------------------
    def set_config(self, **changes: Any) -> SamplingConfig:
        """Change settings for the next token; ValueError (naming the setting) if out of range."""
        new = replace(self.config, **changes)
        new.validate()
        if new.seed != self.config.seed:
            self.rng = np.random.default_rng(new.seed)
        self.config = new
        return new

    # ---- prompt and state --------------------------------------------------------------------
    def set_prompt(self, text: str) -> None:
        """Start over from `text` (an empty prompt starts from the start token, or GPT-2's end-of-text)."""
        with self._lock:
            text = valid_utf8(text)
            ids = self.tokenizer.encode(text, add_special_tokens=False) if text else []
            if not ids:
                ids = [self.start_id]
            room = self.n_positions - 1  # leave room for at least one new token
            self.prompt_dropped = max(0, len(ids) - room)  # tokens cut from the start of a too-long prompt
            ids = ids[-room:]
            self.n_dropped = self.prompt_dropped
            self.prompt = text
            self.rng = np.random.default_rng(self.config.seed)
            self.n_generated = 0
            self.done = False
            self.generated_text = []
            self._prefill(ids)
            self.prompt_len = len(ids)

    def reset(self) -> None:
        """Back to the prompt; the generator is re-seeded."""
        self.set_prompt(self.prompt)

    def _prefill(self, ids: list[int]) -> ForwardOutput:
        self.backend.reset()
        out = self.backend.forward(ids)
        self.tokens = list(ids)
        self.pieces = pieces_for(self.tokenizer, ids)
        self.views = [self._view(out, row, pos) for row, pos in enumerate(range(len(ids)))]
        self._set_next_logits(out.logits)
        return out

    def _view(self, out: ForwardOutput, row: int, pos: int) -> PositionView:
        """The view of position `pos`; lens/norms exist only for the last new position."""
        last = row == out.attention.shape[2] - 1
        norms, cosines = norms_and_cosines(out.resid) if last else (np.zeros(0, np.float32), np.zeros(0, np.float32))
        lens = []
        if last:
            lensed = replace(out, attention=None)  # what the lens reads, without the forward's [L, H, T_new, T] capture
            lens = LazyLens(lambda: self._lens_entries(lensed.lens_ids, lensed.lens_p))
        return PositionView(out.attention[:, :, row, : pos + 1], lens, norms, cosines)

    def token_text(self, token_id: int) -> str:
        """The text of one token alone (a label: may be "\ufffd" for part of a character)."""
        text = self.texts.get(token_id)
        if text is None:
            text = self.texts[token_id] = self.tokenizer.decode([token_id])
        return text

    def _lens_entries(self, lens_ids: np.ndarray, lens_p: np.ndarray) -> list[LensEntry]:  # [L], [L]
        return [LensEntry(layer, int(tid), self.token_text(int(tid)), float(p)) for layer, (tid, p) in enumerate(zip(lens_ids, lens_p))]

    @property
    def text(self) -> str:
        """The prompt followed by everything generated so far."""
        return self.prompt + "".join(self.generated_text)

    @property
    def last_position(self) -> int:
        """Index of the context's last token in the full sequence (prompt included, slid-out tokens counted)."""
        return self.n_dropped + len(self.tokens) - 1

    @property
    def last_lens(self) -> list[LensEntry]:
        return self.views[-1].lens

    @property
    def last_norms(self) -> np.ndarray:
        return self.views[-1].norms

    @property
    def last_cosines(self) -> np.ndarray:
        return self.views[-1].cosines

    def attention_matrix(self) -> np.ndarray:
        """[L, H, T, T] attention over the current context; row i is token i's, zeros above the diagonal."""
        return attention_matrix([view.rows for view in self.views])  # float32: the compact rows widen on the way in

    # ---- the next token ----------------------------------------------------------------------
    def next_distributions(self) -> tuple[np.ndarray, np.ndarray]:
        """([V] before, [V] after temperature/top-k/top-p) for the next token."""
        with self._lock:
            return self._distributions()

    def set_ablations(self, ablations, mode: str = "zero") -> None:
        """Knock out heads, attention layers or MLPs (engine.model.interventions.Ablation) for every next
        token until set to (); the next tokens are drawn from the ablated model. ValueError if out of range."""
        from engine.model.interventions import check_mode

        check_mode(mode)
        for ablation in ablations:
            ablation.check(self.info.n_layer, self.info.n_head)
        with self._lock:
            self.ablations, self.ablation_mode, self._ablated = tuple(sorted(set(ablations))), mode, None
            self._ablated_decoder = None  # a new ablation fills its own cache once, at its first token

    def _set_next_logits(self, logits: np.ndarray) -> None:  # [V] the intact model's, after the context changed
        self._next_logits = logits
        self._ablated = None  # computed again for the new context when asked

    def _ablated_forward(self) -> tuple[np.ndarray, np.ndarray]:  # -> [V] logits, [L + 1, d] residual stream
        """The next token's logits and the residual stream at the last position with the ablations in force.

        A zero-ablated model keeps its own KV cache on either engine (ablating a head changes every later
        position's keys, so the live one cannot serve): filled once when the ablation starts, then a token
        at a time. A mean ablation's mean moves with every token and with it every position's activations
        from the lowest ablated block up: the NumPy engine keeps the blocks below (MeanAblatedDecoder), the
        rest reads the whole context again (engine.runtime.interventions.ablated_decoder)."""
        if self._ablated is None:
            from engine.runtime.interventions import ablated_decoder

            if self._ablated_decoder is None:
                net, hf_model = (self.backend.net, None) if self.engine == "numpy" else (None, self.model.hf_model)
                self._ablated_decoder = ablated_decoder(self.engine, net, hf_model, self.ablations, self.ablation_mode, self.n_positions)
            if self._ablated_decoder is not None:
                self._ablated = self._ablated_decoder.forward(self.tokens)
            else:
                if self.engine == "numpy":
                    from engine.model.interventions import run_numpy

                    run = run_numpy(self.backend.net, self.tokens, self.ablations, self.ablation_mode)
                else:
                    from engine.runtime.interventions import run_torch

                    run = run_torch(self.model.hf_model, self.tokens, self.ablations, self.ablation_mode)
                self._ablated = (run.logits, run.resid)
        return self._ablated

    def _logits(self) -> np.ndarray:  # -> [V] what the next token is drawn from
        return self._ablated_forward()[0] if self.ablations else self._next_logits

    def ablation_view(self, candidates: list[Candidate]) -> AblationView | None:
        """How the ablations move the next token's distribution, and the ablated model's lens, norms and
        cosines at the last position (the lens computed when read), or None without any ablation."""
        with self._lock:
            if not self.ablations:
                return None
            logits, resid = self._ablated_forward()  # [V], [L + 1, d]
            intact, ablated = raw_probs(self._next_logits), raw_probs(logits)  # [V], [V]
            norms, cosines = norms_and_cosines(resid)
            return AblationView(
                labels=tuple(a.label for a in self.ablations),
                mode=self.ablation_mode,
                kl=kl_divergence(intact, ablated),
                flipped=int(np.argmax(intact)) != int(np.argmax(ablated)),
                intact={c.token_id: float(intact[c.token_id]) for c in candidates},
                lens=LazyLens(lambda: self._lens_entries(*self.backend.lens_top(resid))),
                norms=norms,
                cosines=cosines,
            )

    def _distributions(self) -> tuple[np.ndarray, np.ndarray]:
        logits = self._logits()
        cfg = self.config
        return raw_probs(logits), warp_probs(logits, cfg.temperature, cfg.top_k, cfg.top_p)

    def preview(self, n: int | None = None) -> list[Candidate]:
        """The next token's top candidates under the settings in force now."""
        with self._lock:
            p_raw, p = self._distributions()
            return top_candidates(self.token_text, p_raw, p, n or self.top_n)

    def step(self, on_chosen: OnChosen | None = None) -> TokenEvent:
        """Sample one token from the warped distribution and append it.

        `on_chosen(token_id, text, p_raw)` hears the token as soon as it is drawn, before the forward
        pass that reads it in (most of the step): a UI can show it that much sooner."""
        return self._advance(None, on_chosen)

    def force(self, token_id: int, on_chosen: OnChosen | None = None) -> TokenEvent:
        """Append a token chosen by hand."""
        if not (isinstance(token_id, (int, np.integer)) and 0 <= token_id < self.info.vocab_size):
            raise ValueError(f"token id must be in [0, {self.info.vocab_size - 1}] (got {token_id})")
        return self._advance(int(token_id), on_chosen)

    def _advance(self, forced_id: int | None, on_chosen: OnChosen | None) -> TokenEvent:
        with self._lock:
            if self._next_logits is None:
                raise RuntimeError("set_prompt() must be called before step()")
            if self.done:
                raise GenerationDone("the model already produced its end-of-text token; undo or reset to go on")
            started = time.perf_counter()
            config = replace(self.config)
            # 1. distributions before / after temperature, top-k, top-p
            p_raw, p = self._distributions()
            # 2. draw (or take the forced token)
            token_id = int(sample(p, self.rng)) if forced_id is None else forced_id
            candidates = top_candidates(self.token_text, p_raw, p, self.top_n)
            chosen_p_raw, chosen_p = float(p_raw[token_id]), float(p[token_id])
            entropy_raw, entropy_p = float(entropy(p_raw)), float(entropy(p))  # nats, for the timeline
            piece = next_piece(self.tokenizer, self.tokens + [token_id])
            sampled = time.perf_counter()
            if on_chosen is not None:
                on_chosen(token_id, piece, chosen_p_raw)
            read_from = time.perf_counter()  # the listener's time is not the engine's
            # 3. slide the window when the context is full, then run the new token through the model
            dropped = 0
            if len(self.tokens) + 1 > self.n_positions:
                keep = max(1, int(self.n_positions * SLIDE_KEEP_FRACTION) - 1)
                dropped = len(self.tokens) - keep
                old_pieces = self.pieces[dropped:]
                out = self._prefill(self.tokens[dropped:] + [token_id])
                self.pieces = old_pieces + [piece]
                self.prompt_len = max(0, self.prompt_len - dropped)
                self.n_dropped += dropped
            else:
                out = self.backend.forward([token_id])
                self.tokens.append(token_id)
                self.pieces.append(piece)
                self.views.append(self._view(out, 0, len(self.tokens) - 1))
                self._set_next_logits(out.logits)
            forwarded = time.perf_counter()
            self.n_generated += 1
            self.generated_text.append(self.pieces[-1])
            self.done = token_id in self.eos_ids
            view = self.views[-1]
            return TokenEvent(
                token_id=token_id,
                text=self.pieces[-1],
                position=self.last_position,
                candidates=candidates,
                p_raw=chosen_p_raw,
                p=chosen_p,
                entropy=entropy_p,
                entropy_raw=entropy_raw,
                attention=np.array(out.attention[:, :, -1], dtype=np.float32),  # [L, H, T] the new token's row, exact (kept as float16)
                lens=view.lens,
                norms=view.norms,
                cosines=view.cosines,
                timings={
                    "sample": (sampled - started) * 1e3,
                    "forward": (forwarded - read_from) * 1e3,
                    "total": (sampled - started + forwarded - read_from) * 1e3,
                },
                config=config,
                forced=forced_id is not None,
                eos=self.done,
                slid=dropped > 0,
                dropped=dropped,
                ablated=tuple(a.label for a in self.ablations),
            )

    def prediction_before(self, index: int) -> StepView:
        """What the intact model predicted for context token `index` (>= 1) from the tokens before it: its
        candidates under the settings in force now, and the lens, norms and cosines at position index - 1.
        Used for prompt tokens, which were read, not sampled (a generated token's step is its TokenEvent)."""
        with self._lock:
            if not 1 <= index < len(self.tokens):
                raise ValueError(f"position must be in [1, {len(self.tokens) - 1}] (got {index})")
            if self._scratch is None:
                self._scratch = scratch_backend(self.engine, self.model, self.n_positions)
            self._scratch.reset()
            out = self._scratch.forward(self.tokens[:index])
            cfg = self.config
            p_raw, p = raw_probs(out.logits), warp_probs(out.logits, cfg.temperature, cfg.top_k, cfg.top_p)  # [V], [V]
            norms, cosines = norms_and_cosines(out.resid)
            return StepView(
                top_candidates(self.token_text, p_raw, p, self.top_n), None, self._lens_entries(out.lens_ids, out.lens_p), norms, cosines
            )

    def undo(self) -> int | None:
        """Remove the last generated token (cache rolled back). The random stream does not rewind."""
        with self._lock:
            if self.n_generated == 0 or len(self.tokens) <= 1:
                return None
            removed = self.tokens.pop()
            self.pieces.pop()
            self.views.pop()
            self.generated_text.pop()
            self.n_generated -= 1
            self.done = False
            self.prompt_len = min(self.prompt_len, len(self.tokens))
            # the cache drops the removed token and the one before it, which is re-fed to get its logits back,
            # and its view: after a slide re-read the window, only the last position had lens, norms and cosines
            self.backend.crop(len(self.tokens) - 1)
            out = self.backend.forward([self.tokens[-1]])
            self.views[-1] = self._view(out, 0, len(self.tokens) - 1)
            self._set_next_logits(out.logits)
            return removed

    def run(self, n: int | None = None, cancel: threading.Event | None = None) -> Iterator[TokenEvent]:
        """Up to n tokens (default max_new_tokens); stops at end-of-text or when `cancel` is set."""
        for _ in range(self.config.max_new_tokens if n is None else n):
            if (cancel is not None and cancel.is_set()) or self.done:
                return
            yield self.step()
