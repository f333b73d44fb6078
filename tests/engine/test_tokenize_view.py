"""The tokenization view: pieces, ids, bytes, tokens per word, round trips; encoder attention."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.runtime.loading import ModelLoadError
from engine.views.tokenization import (
    EXAMPLES,
    byte_to_char_table,
    encoder_attention,
    format_tokenization,
    load_tokenizer,
    side_by_side,
    tokenize,
    tokenize_json,
)


def covered_bytes(view):
    return b"".join(bytes.fromhex(h) for h in view.token_bytes)


@pytest.fixture(params=["toy_tokenizer", "local_bpe"])
def byte_level(request):
    return request.getfixturevalue(request.param)


def test_examples_cover_the_languages_the_issue_names():
    labels = {example.label for example in EXAMPLES}
    assert {"English", "Russian", "Chinese", "Arabic", "Hindi"} <= labels
    assert len(EXAMPLES) >= 7
    assert all(example.text.strip() for example in EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.label)
def test_byte_level_round_trips_every_example(byte_level, example):
    view = tokenize(byte_level, example.text)
    assert view.byte_level
    assert view.round_trip == example.text and view.round_trip_ok
    assert covered_bytes(view) == example.text.encode("utf-8")  # the tokens' bytes tile the input exactly
    assert view.n_tokens == len(view.ids) == len(view.pieces) == len(view.offsets)
    assert view.n_chars == len(example.text) and view.n_bytes == len(example.text.encode("utf-8"))


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=40))
def test_byte_level_round_trips_any_text(local_bpe, toy_tokenizer, text):
    for tokenizer in (local_bpe, toy_tokenizer):
        view = tokenize(tokenizer, text)
        assert view.round_trip_ok, (text, view.round_trip)
        assert covered_bytes(view) == text.encode("utf-8")


def test_byte_level_pieces_show_spaces_and_partial_characters(local_bpe):
    view = tokenize(local_bpe, "a b\n")
    assert "".join(view.pieces) == "a␣b↵"  # "Ġ" / "Ċ" become the visible markers
    chinese = tokenize(local_bpe, "温暖")
    for piece, hex_bytes in zip(chinese.pieces, chinese.token_bytes):
        raw = bytes.fromhex(hex_bytes)
        assert piece == raw.decode("utf-8", errors="backslashreplace")  # loose bytes show as \xNN
    assert "Ġ" not in "".join(tokenize(local_bpe, " the baker and the flour").pieces)


def test_byte_table_is_gpt2s_reversible_map():
    table = byte_to_char_table()
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("A")] == "A"


def test_wordpiece_pieces_bytes_and_words(bert_dir):
    tokenizer = load_tokenizer(str(bert_dir))
    text = "Пекарь купил муку, baker walked."
    view = tokenize(tokenizer, text)
    assert not view.byte_level
    assert view.ids == tokenizer.encode(text, add_special_tokens=False)
    assert view.words == ["Пекарь", "купил", "муку,", "baker", "walked."]
    assert sum(view.tokens_per_word) == view.n_tokens  # WordPiece pieces never straddle a space
    assert view.tokens_per_word[2] >= 2  # "муку" and ","
    for (start, end), hex_bytes in zip(view.offsets, view.token_bytes):
        assert bytes.fromhex(hex_bytes) == text[start:end].encode("utf-8")
    continuation = [p for p in view.pieces if p.startswith("##")]
    assert all(len(p) > 2 for p in continuation)


def test_tokenize_json_is_plain_data(bert_dir):
    view = tokenize(load_tokenizer(str(bert_dir)), EXAMPLES[1].text)
    data = json.loads(json.dumps(tokenize_json(view)))
    assert data["n_tokens"] == view.n_tokens == len(data["tokens"])
    assert data["tokens"][0] == {
        "id": view.ids[0],
        "piece": view.pieces[0],
        "bytes": view.token_bytes[0],
        "start": view.offsets[0][0],
        "end": view.offsets[0][1],
    }


def test_format_tokenization_has_a_row_per_token(toy_tokenizer):
    view = tokenize(toy_tokenizer, "In a small village, Привет")
    text = format_tokenization(view)
    assert len(text.splitlines()) == 1 + view.n_tokens + 3
    assert "round trip exact" in text and "village" in text


def test_encoder_attention_shapes_and_rows(bert_dir):
    result = encoder_attention(str(bert_dir), "Пекарь купил муку.")
    T = len(result.ids)
    assert result.model_type == "bert"
    assert result.tokens[0] == "[CLS]" and result.tokens[-1] == "[SEP]"
    assert result.attention.shape == (2, 4, T, T) and result.attention.dtype == np.float32
    np.testing.assert_allclose(result.attention.sum(-1), 1.0, atol=1e-5)
    assert np.triu(result.attention[0, 0], 1).sum() > 0  # an encoder looks both ways
    assert not result.truncated


def test_encoder_attention_truncates_to_the_context(bert_dir):
    result = encoder_attention(str(bert_dir), " ".join(["baker"] * 200))
    assert result.truncated and len(result.ids) == 64


def test_encoder_attention_refuses_decoders(tiny_dir):
    with pytest.raises(ModelLoadError, match="BERT-like encoders"):
        encoder_attention(str(tiny_dir), "hello")


def test_remote_code_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "my-custom", "auto_map": {"AutoConfig": "custom.Config"}}))
    with pytest.raises(ModelLoadError, match="could not read the config"):
        encoder_attention(str(tmp_path), "hello")


def test_load_tokenizer_failures_are_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="no model directory"):
        load_tokenizer(str(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match="no tokenizer files"):
        load_tokenizer(str(tmp_path))
    with pytest.raises(ModelLoadError, match="not in the Hugging Face cache"):
        load_tokenizer("tfund-not-a-cached-model")
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="could not load a tokenizer") as caught:
        load_tokenizer(str(tmp_path))
    assert "\n" not in str(caught.value)


def test_side_by_side_gives_each_tokenizer_its_count_and_its_cost_relative_to_english(toy_tokenizer, local_bpe):
    tokenizers = {"toy": toy_tokenizer, "local": local_bpe}
    russian = next(e.text for e in EXAMPLES if e.label == "Russian")
    rows = side_by_side(tokenizers, russian)
    assert [row.name for row in rows] == ["toy", "local"]
    for row, tokenizer in zip(rows, tokenizers.values()):
        assert row.n_tokens == tokenize(tokenizer, russian).n_tokens and row.pieces == tokenize(tokenizer, russian).pieces
        assert row.per_english == row.n_tokens / tokenize(tokenizer, EXAMPLES[0].text).n_tokens  # its own English count
    assert rows[0].per_english > 1  # the toy's English-only BPE spends more tokens on Russian than on English
    assert all(row.per_english == 1.0 for row in side_by_side(tokenizers, EXAMPLES[0].text))
    german = next(e.text for e in EXAMPLES if e.label.startswith("German"))
    assert all(row.per_english is None for row in side_by_side(tokenizers, german))  # not a translation of it
