"""How a sentence splits into tokens, for any tokenizer that loads offline; attention of encoder models.

    tok = load_tokenizer("toy")                 # or a local directory, or a cached hub name
    view = tokenize(tok, "Привет, мир!")        # pieces, ids, bytes, offsets, tokens per word
    view.round_trip_ok                          # decode(ids) == text (always, for byte-level BPE)

Display convention, the same for every tokenizer: a space inside a piece shows as "␣" (GPT-2's "Ġ" and
SentencePiece's "▁" both become "␣"), a newline as "↵", a tab as "⇥", a control character as
its picture (engine.views.pieces.visible). A byte-level piece that holds only part of a multi-byte
character shows its loose bytes as `\\xNN` escapes. WordPiece's "##" continuation
prefix is kept: it is how that tokenizer marks a piece glued to the previous one.

torch and transformers are imported inside the functions that need them.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from engine.formats.gguf import GGUFError
from engine.runtime.conversions import GGUFModelFile
from engine.runtime.loading import ModelLoadError, quiet_transformers
from engine.runtime.sources import locate_model
from engine.views.pieces import TOKEN_MARKERS, visible

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model")
SENTENCEPIECE_SPACE = "▁"


@dataclass
class Example:
    label: str  # what the TUI lists, e.g. "Russian"
    text: str  # the sentence to tokenize


EXAMPLES = [
    Example("English", "In a small village, the baker shared warm bread with everyone."),
    Example("Russian", "В маленькой деревне пекарь делился тёплым хлебом со всеми."),
    Example("Chinese", "在一个小村庄里，面包师和大家分享温暖的面包。"),
    Example("Arabic", "في قرية صغيرة، كان الخباز يتقاسم الخبز الدافئ مع الجميع."),
    Example("Hindi", "एक छोटे से गाँव में, बेकर सबके साथ गरम रोटी बाँटता था।"),
    Example("Japanese", "小さな村で、パン屋はみんなと温かいパンを分け合った。"),
    Example("German (compounds)", "Die Donaudampfschifffahrtsgesellschaft backt Vollkornbrot."),
    Example("Emoji and code", 'Bread 🍞 costs $3.50 → print(f"{x:>4}")'),
]
TRANSLATIONS = {example.text for example in EXAMPLES[:6]}  # English to Japanese: one sentence, so token counts compare


@dataclass
class TokenizationView:
    """One sentence split by one tokenizer. Lists are per token unless said otherwise."""

    text: str  # the input
    ids: list[int]
    pieces: list[str]  # display strings (see the module's display convention)
    token_bytes: list[str]  # hex of the UTF-8 bytes each token covers, e.g. "e6 88 91"
    offsets: list[tuple[int, int]]  # [start, end) character span in `text`
    words: list[str]  # `text` split on whitespace
    tokens_per_word: list[int]  # per word: how many tokens overlap it
    n_tokens: int
    n_chars: int
    n_bytes: int  # UTF-8 bytes of `text`
    round_trip: str  # decode(ids)
    round_trip_ok: bool  # round_trip == text
    byte_level: bool  # a byte-level BPE (GPT-2 style): every text round-trips

    @property
    def chars_per_token(self) -> float:
        return self.n_chars / max(self.n_tokens, 1)


@dataclass
class EncoderAttention:
    """Attention of a BERT-like encoder over one sentence (no generation)."""

    model_type: str  # config.model_type, e.g. "bert"
    tokens: list[str]  # display pieces, special tokens ([CLS], [SEP]) included
    ids: list[int]
    attention: np.ndarray  # [L, H, T, T] float32; every row sums to 1 (padding-free, unmasked)
    truncated: bool  # the sentence was cut to the model's maximum length


# ---- loading -----------------------------------------------------------------------------------
def load_tokenizer(name_or_path: str) -> Any:
    """A fast tokenizer from "toy", a local directory or a cached hub name. Raises ModelLoadError."""
    location = (source := locate_model(name_or_path)).path
    if source.kind == "gguf":
        return gguf_fast_tokenizer(location)
    if not source.is_local:
        raise ModelLoadError(
            f"tokenizer '{name_or_path}' is not in the Hugging Face cache; download it once while online "
            f"(e.g. `hf download {name_or_path}`) or pass a local directory"
        )
    if not any(os.path.isfile(os.path.join(location, name)) for name in TOKENIZER_FILES):
        raise ModelLoadError(f"'{name_or_path}' has no tokenizer files (tokenizer.json, vocab.txt or vocab.json)")
    from transformers import AutoTokenizer

    quiet_transformers()
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=True, trust_remote_code=False)
    except Exception as error:  # transformers raises many types; the user gets one sentence
        raise ModelLoadError(f"could not load a tokenizer from '{name_or_path}': {first_line(error)}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(
            f"the tokenizer of '{name_or_path}' has no tokenizer.json (a 'fast' tokenizer), which is needed to map tokens to text spans"
        )
    return tokenizer


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0].rstrip(" :") if text else error.__class__.__name__


# ---- byte-level BPE ----------------------------------------------------------------------------
def byte_to_char_table() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used inside byte-level token strings.

    Printable Latin-1 bytes stand for themselves; the other 68 bytes (controls, space, 0x7f-0xa0, 0xad)
    are given the characters 256, 257, ... in byte order, so "Ġ" (256 + 32) is the space.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    shifted = (b for b in range(256) if b not in table)
    for n, b in enumerate(shifted):
        table[b] = chr(256 + n)
    return table


def is_byte_level(tokenizer: Any) -> bool:
    """True when the tokenizer's pre-tokenizer or decoder is ByteLevel (GPT-2, RoBERTa, the toy BPE)."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    return has_component(spec.get("pre_tokenizer"), "ByteLevel") or has_component(spec.get("decoder"), "ByteLevel")


def has_component(spec: Any, kind: str) -> bool:
    """Whether a tokenizer.json component (possibly a Sequence of them) contains one of type `kind`."""
    if isinstance(spec, dict):
        return spec.get("type") == kind or any(has_component(v, kind) for v in spec.values())
    if isinstance(spec, list):
        return any(has_component(v, kind) for v in spec)
    return False


def vocabulary_bytes(tokenizer: Any, ids: list[int]) -> tuple[list[str], list[bytes | None]]:
    """Each id's vocabulary string, and its exact bytes where the tokenizer is byte-level (else None).

    Special and added tokens (e.g. "<|endoftext|>") are not byte-encoded, so they get None too.
    """
    backend = tokenizer.backend_tokenizer
    strings = [backend.id_to_token(i) for i in ids]
    if not is_byte_level(tokenizer):
        return strings, [None] * len(ids)
    special = set(backend.get_added_tokens_decoder())  # special and added tokens alike
    char_to_byte = {c: b for b, c in byte_to_char_table().items()}
    raw = [
        bytes(char_to_byte[c] for c in s) if i not in special and all(c in char_to_byte for c in s) else None for i, s in zip(ids, strings)
    ]
    return strings, raw


# ---- display -----------------------------------------------------------------------------------
def display_piece(token: str, raw: bytes | None) -> str:
    """A token's display string: its bytes decoded when known (byte-level), else its vocabulary string."""
    if raw is not None:
        return visible(raw.decode("utf-8", errors="backslashreplace"), **TOKEN_MARKERS)
    return visible(token.replace(SENTENCEPIECE_SPACE, " "), **TOKEN_MARKERS)


# ---- tokenize ----------------------------------------------------------------------------------
def tokenize(tokenizer: Any, text: str, add_special_tokens: bool = False) -> TokenizationView:
    """Split `text` and describe every token (see TokenizationView).

    `tokenizer`: anything with a `backend_tokenizer` (tokenizers.Tokenizer): transformers' fast
    tokenizers and engine.runtime.tokenizer.TextTokenizer alike; all the work is the backend's.
    """
    encoding = tokenizer.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens)
    ids = [int(i) for i in encoding.ids]
    offsets = [(int(s), int(e)) for s, e in encoding.offsets]
    strings, raw_bytes = vocabulary_bytes(tokenizer, ids)
    covered = [raw if raw is not None else text[s:e].encode("utf-8") for raw, (s, e) in zip(raw_bytes, offsets)]
    words, spans = split_words(text)
    round_trip = tokenizer.backend_tokenizer.decode(ids, skip_special_tokens=False)
    return TokenizationView(
        text=text,
        ids=ids,
        pieces=[display_piece(s, raw) for s, raw in zip(strings, raw_bytes)],
        token_bytes=[b.hex(" ") for b in covered],
        offsets=offsets,
        words=words,
        tokens_per_word=[tokens_in_span(offsets, span) for span in spans],
        n_tokens=len(ids),
        n_chars=len(text),
        n_bytes=len(text.encode("utf-8")),
        round_trip=round_trip,
        round_trip_ok=round_trip == text,
        byte_level=is_byte_level(tokenizer),
    )


@dataclass
class TokenizerCount:
    """One tokenizer's split of a sentence, beside the others' (`side_by_side`)."""

    name: str
    n_tokens: int
    per_english: float | None  # n_tokens / this tokenizer's tokens for the English example, when `text` translates it
    pieces: list[str]  # display strings, as TokenizationView's


def side_by_side(tokenizers: dict[str, Any], text: str) -> list[TokenizerCount]:
    """The same sentence through several tokenizers (name -> tokenizer), in their order. For a translation of the
    English example, each count is also given relative to that tokenizer's own count for the English sentence:
    the cost of one meaning in each language, comparable across tokenizers (characters per token is not)."""
    rows = []
    for name, tokenizer in tokenizers.items():
        view = tokenize(tokenizer, text)
        english = tokenize(tokenizer, EXAMPLES[0].text).n_tokens if text in TRANSLATIONS else None
        rows.append(TokenizerCount(name, view.n_tokens, view.n_tokens / english if english else None, view.pieces))
    return rows


def split_words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Whitespace-separated words and their [start, end) character spans."""
    matches = list(re.finditer(r"\S+", text))
    return [m.group() for m in matches], [m.span() for m in matches]


def tokens_in_span(offsets: list[tuple[int, int]], span: tuple[int, int]) -> int:
    """Tokens whose character span overlaps `span` (an empty span counts where it sits)."""
    lo, hi = span
    return sum(1 for s, e in offsets if (s < hi and e > lo) or (s == e and lo <= s < hi))


def tokenize_json(view: TokenizationView) -> dict:
    """The view as plain JSON data (`tfund tokenize --json`)."""
    record = asdict(view)
    record["offsets"] = [list(span) for span in view.offsets]
    record["tokens"] = [
        {"id": i, "piece": p, "bytes": b, "start": s, "end": e}
        for i, p, b, (s, e) in zip(view.ids, view.pieces, view.token_bytes, view.offsets)
    ]
    return record


def format_tokenization(view: TokenizationView) -> str:
    """A plain-text table for `tfund tokenize`: one row per token, then per-word counts and totals."""
    width = max([len(p) for p in view.pieces] + [5])
    lines = [f"{'#':>4}  {'id':>7}  {'piece':<{width}}  bytes"]
    lines += [f"{n:>4}  {i:>7}  {p:<{width}}  {b}" for n, (i, p, b) in enumerate(zip(view.ids, view.pieces, view.token_bytes))]
    lines.append("")
    lines.append("tokens per word: " + "  ".join(f"{visible(w, **TOKEN_MARKERS)}={k}" for w, k in zip(view.words, view.tokens_per_word)))
    ratio = view.n_tokens / max(len(view.words), 1)
    lines.append(
        f"{view.n_tokens} tokens, {view.n_chars} characters, {view.n_bytes} bytes, "
        f"{ratio:.2f} tokens per word; round trip {'exact' if view.round_trip_ok else 'differs: ' + repr(view.round_trip)}"
    )
    return "\n".join(lines)


def gguf_fast_tokenizer(path: str) -> Any:
    """transformers' fast tokenizer around the tokenizer.json tfund builds from a GGUF's metadata."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    try:
        model_file = GGUFModelFile(path)
        tokenizer_json, settings = model_file.tokenizer_json(), model_file.tokenizer_config()
    except GGUFError as error:
        raise ModelLoadError(str(error)) from None
    special = {name: settings[name] for name in ("bos_token", "eos_token") if settings.get(name)}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(tokenizer_json), clean_up_tokenization_spaces=False, **special)


# ---- encoder attention -------------------------------------------------------------------------
def encoder_attention(model_dir: str, text: str, allow_pickle: bool = False) -> EncoderAttention:
    """All layers' and heads' attention of a BERT-like encoder on `text`. Raises ModelLoadError."""
    location = (source := locate_model(model_dir)).path
    if not source.is_local:
        raise ModelLoadError(
            f"model '{model_dir}' is not in the Hugging Face cache; download it once while online or pass a local directory"
        )
    import torch
    from transformers import AutoConfig, AutoModel
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    quiet_transformers()
    options = dict(local_files_only=True, trust_remote_code=False)
    try:
        config = AutoConfig.from_pretrained(location, **options)
    except Exception as error:
        raise ModelLoadError(f"could not read the config of '{model_dir}': {first_line(error)}") from None
    if config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES or getattr(config, "is_encoder_decoder", False):
        raise ModelLoadError(
            f"'{model_dir}' holds a '{config.model_type}' model; the encoder attention view takes BERT-like encoders "
            f"(bert, roberta, xlm-roberta, distilbert, ...)"
        )
    tokenizer = load_tokenizer(model_dir)
    try:
        model = AutoModel.from_pretrained(location, attn_implementation="eager", use_safetensors=None if allow_pickle else True, **options)
    except Exception as error:
        raise ModelLoadError(f"could not load encoder '{model_dir}': {first_line(error)}") from None
    model.eval()
    max_length = min(getattr(config, "max_position_embeddings", 512), tokenizer.model_max_length)
    full = tokenizer(text, add_special_tokens=True)["input_ids"]
    encoding = tokenizer(text, add_special_tokens=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.inference_mode():
        out = model(**encoding, output_attentions=True)
    if not out.attentions:
        raise ModelLoadError(f"'{model_dir}' returned no attention weights (its attention implementation cannot report them)")
    attention = torch.stack([a[0] for a in out.attentions]).float().numpy()  # [L, H, T, T]
    ids = [int(i) for i in encoding["input_ids"][0]]
    strings, raw_bytes = vocabulary_bytes(tokenizer, ids)
    return EncoderAttention(
        model_type=config.model_type,
        tokens=[display_piece(s, raw) for s, raw in zip(strings, raw_bytes)],
        ids=ids,
        attention=attention,
        truncated=len(full) > len(ids),
    )
