"""Streaming token → text decoding that never breaks a multi-byte character."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

REPLACEMENT = "\ufffd"  # what byte-level BPE decoding yields for an incomplete UTF-8 sequence
LOOKBACK = 8  # tokens of left context decoded with each new token (a UTF-8 character spans ≤ 4 bytes)


def decode(tokenizer: Any, ids: Sequence[int]) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)


def next_piece(tokenizer: Any, ids: Sequence[int]) -> str:
    """Text that the last id of `ids` adds to the stream; "" while a character is still incomplete.

    Pieces of consecutive tokens concatenate to the decoded text: a token that completes a character
    begun by earlier tokens carries the whole character.
    """
    window = list(ids[-LOOKBACK:])
    before = decode(tokenizer, window[:-1])
    after = decode(tokenizer, window)
    if after.endswith(REPLACEMENT):
        return ""
    return after[len(before.rstrip(REPLACEMENT)) :]


def pieces_for(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """next_piece for every prefix: one piece per token."""
    return [next_piece(tokenizer, ids[: i + 1]) for i in range(len(ids))]


def valid_utf8(text: str) -> str:
    """Text a tokenizer accepts: bytes smuggled in as lone surrogates (a terminal's non-UTF-8 input,
    Python's surrogateescape) become U+FFFD instead of crashing the tokenizer."""
    try:
        raw = text.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", errors="replace")
    return raw.decode("utf-8", errors="replace")
