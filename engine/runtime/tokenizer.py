"""A model directory's tokenizer through the `tokenizers` library alone: milliseconds, no transformers.

TextTokenizer has the part of transformers' PreTrainedTokenizerFast that the sampler and the views
use (encode, decode, eos_token_id, bos_token_id, get_vocab, len, backend_tokenizer), with the same ids
and text. It reads tokenizer.json; the end-of-text and start tokens come from tokenizer_config.json
(the end-of-text token else from config.json).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json(path: Path) -> dict:
    """A JSON object from `path`, {} when the file is missing."""
    if not path.is_file():
        return {}
    value = json.loads(path.read_text(encoding="utf-8"))
    return value if isinstance(value, dict) else {}


def light_tokenizer_problem(path: Path) -> str | None:
    """Why TextTokenizer cannot stand in for transformers' tokenizer of this directory; None if it can."""
    if not (path / "tokenizer.json").is_file():
        return "no tokenizer.json"
    if read_json(path / "tokenizer_config.json").get("clean_up_tokenization_spaces"):
        return "clean_up_tokenization_spaces is on"  # transformers rewrites decoded text; we do not
    return None


def token_content(token: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or {"content": ...}."""
    return token.get("content") if isinstance(token, dict) else token


def first_id(value: Any) -> int | None:  # config.json's eos_token_id: an id, a list of ids, or absent
    return value[0] if isinstance(value, list) and value else value if isinstance(value, int) else None


class TextTokenizer:
    def __init__(self, backend: Any, eos_token_id: int | None, bos_token_id: int | None = None):
        self.backend_tokenizer = backend  # tokenizers.Tokenizer
        self.eos_token_id = eos_token_id
        self.bos_token_id = bos_token_id

    @classmethod
    def from_dir(cls, path) -> TextTokenizer:
        from tokenizers import Tokenizer

        path = Path(path)
        backend = Tokenizer.from_file(str(path / "tokenizer.json"))
        settings, config = read_json(path / "tokenizer_config.json"), read_json(path / "config.json")
        eos, bos = token_content(settings.get("eos_token")), token_content(settings.get("bos_token"))
        eos_id = backend.token_to_id(eos) if eos else first_id(config.get("eos_token_id"))
        bos_id = backend.token_to_id(bos) if bos else None
        return cls(backend, eos_id, bos_id)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool = False) -> str:
        """`clean_up_tokenization_spaces` is accepted as transformers' is; directories that turn it on load with transformers."""
        return self.backend_tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def get_vocab(self) -> dict[str, int]:
        return self.backend_tokenizer.get_vocab(with_added_tokens=True)

    def __len__(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)
