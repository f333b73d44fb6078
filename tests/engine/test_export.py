"""Exports: atomic writes, names kept inside the export folder, files that parse, clear failures."""

import errno
import json
import os
import xml.etree.ElementTree as ET
from datetime import datetime

import numpy as np
import pytest

from engine.events import Candidate
from engine.views import export
from engine.views.export import (
    ExportError,
    atomic_write_bytes,
    atomic_write_text,
    attention_json,
    attention_text_heatmap,
    candidates_table,
    export_bundle,
    safe_export_path,
    timestamped_name,
)

NOW = datetime(2025, 1, 31, 14, 25, 1, 123456)
TOKENS = ["In", " a", " small", " village", ","]
SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text x="0" y="9">tfund ░▒▓█</text></svg>'


def causal_attention(T, seed=0):  # -> [T, T], rows sum to 1, zeros above the diagonal
    rng = np.random.default_rng(seed)
    scores = np.where(np.tril(np.ones((T, T), bool)), rng.random((T, T)), 0.0)
    return scores / scores.sum(axis=1, keepdims=True)


CANDIDATES = [Candidate(262, " the", 0.41, 0.55), Candidate(257, " a", 0.2, 0.25), Candidate(13, "\n", 0.05, 0.0)]


def test_export_bundle_writes_files_that_parse(tmp_path):
    folder = tmp_path / "exports"  # created on demand
    matrix = causal_attention(len(TOKENS))
    trace = [{"position": 5, "id": 262, "text": " the"}, '{"undo": 5}']
    paths = export_bundle(
        folder, svg=SVG, attention=matrix, tokens=TOKENS, layer=1, head=2, candidates=CANDIDATES, trace_lines=trace, now=NOW
    )
    names = sorted(p.name for p in paths)
    assert names == sorted(
        [
            "screen-20250131-142501-123.svg",
            "attention-l1-h2-20250131-142501-123.json",
            "attention-l1-h2-20250131-142501-123.txt",
            "candidates-20250131-142501-123.txt",
            "trace-20250131-142501-123.jsonl",
        ]
    )
    assert all(p.parent == folder.resolve() for p in paths)
    by_name = {p.name.split("-2025")[0] + p.suffix: p for p in paths}
    assert ET.parse(by_name["screen.svg"]).getroot().tag.endswith("svg")
    assert "█" in by_name["attention-l1-h2.txt"].read_text(encoding="utf-8")
    assert "␣the" in by_name["candidates.txt"].read_text(encoding="utf-8")
    saved = json.loads(by_name["attention-l1-h2.json"].read_text(encoding="utf-8"))
    assert saved["tokens"] == TOKENS and saved["layer"] == 1 and saved["head"] == 2
    np.testing.assert_allclose(saved["attention"], matrix, atol=1e-6)
    lines = [json.loads(line) for line in by_name["trace.jsonl"].read_text(encoding="utf-8").splitlines()]
    assert lines == [trace[0], {"undo": 5}]
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_parts_given_as_none_are_skipped_and_repeats_get_new_names(tmp_path):
    first = export_bundle(
        tmp_path, svg=None, attention=None, tokens=[], layer=0, head=None, candidates=CANDIDATES, trace_lines=None, now=NOW
    )
    second = export_bundle(
        tmp_path, svg=None, attention=None, tokens=[], layer=0, head=None, candidates=CANDIDATES, trace_lines=None, now=NOW
    )
    assert [p.name for p in first] == ["candidates-20250131-142501-123.txt"]
    assert [p.name for p in second] == ["candidates-20250131-142501-123-2.txt"]


def test_head_mean_is_labelled():
    matrix = causal_attention(3)
    assert attention_json(matrix, TOKENS[:3], layer=0, head=None)["head"] == "mean"


def test_attention_json_rejects_mismatched_tokens():
    with pytest.raises(ValueError, match=r"\[T, T\]"):
        attention_json(causal_attention(4), TOKENS, layer=0, head=0)


def test_text_heatmap_shades_the_causal_triangle():
    matrix = causal_attention(len(TOKENS))
    text = attention_text_heatmap(matrix, TOKENS, width=80)
    rows = text.splitlines()[1:]
    assert len(rows) == len(TOKENS)
    assert "␣village" in rows[3]  # spaces are made visible in labels
    for i, row in enumerate(rows):
        cells = row[row.index("|") + 1 : row.rindex("|")]
        assert len(cells) == len(TOKENS)
        assert set(cells[i + 1 :]) <= {" "}  # nothing above the diagonal
        assert cells[0] != " " or matrix[i, 0] < matrix.max() / 8
    assert "█" in text


def test_text_heatmap_bins_long_contexts_to_the_width():
    T = 300
    matrix = causal_attention(T)
    tokens = [f"t{i}" for i in range(T)]
    rows = attention_text_heatmap(matrix, tokens, width=60).splitlines()
    assert len(rows) == T + 1
    assert all(len(row) <= 60 for row in rows[1:])
    assert "averaged" in rows[0]


def test_candidates_table_lists_every_candidate():
    lines = candidates_table(CANDIDATES).splitlines()
    assert len(lines) == 1 + len(CANDIDATES)
    assert "␣the" in lines[1] and "0.4100" in lines[1] and "0.5500" in lines[1]
    assert "↵" in lines[3]


def test_timestamped_name():
    assert timestamped_name("screen", ".svg", NOW) == "screen-20250131-142501-123.svg"


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "a/../../b.txt", "", "."])
def test_names_outside_the_folder_are_refused(tmp_path, name):
    with pytest.raises(ExportError, match="export"):
        safe_export_path(tmp_path / "exports", name)


def test_symlink_pointing_out_of_the_folder_is_refused(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    (folder / "screen.svg").symlink_to(outside)
    with pytest.raises(ExportError, match="outside the export folder"):
        safe_export_path(folder, "screen.svg")
    assert outside.read_text() == "keep me"


def test_plain_names_stay_inside(tmp_path):
    assert safe_export_path(tmp_path, "screen.svg") == tmp_path.resolve() / "screen.svg"


def test_atomic_write_replaces_the_old_content(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new ░")
    assert path.read_text(encoding="utf-8") == "new ░"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_unwritable_folder_is_one_sentence(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):  # running as root: permissions do not bind, use a file as "folder"
            folder = tmp_path / "a-file"
            folder.write_text("")
        with pytest.raises(ExportError, match="cannot"):
            export_bundle(folder, svg=SVG, attention=None, tokens=[], layer=0, head=None, candidates=None, trace_lines=None)
    finally:
        (tmp_path / "locked").chmod(0o700)


def test_disk_full_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "big.bin"
    atomic_write_bytes(path, b"previous export")
    real_write = os.write

    def write_half_then_fail(fd, data):  # the disk fills up part-way through
        if len(data) > 4:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(export.os, "write", write_half_then_fail)
    with pytest.raises(ExportError, match="disk is full"):
        atomic_write_bytes(path, b"x" * 1000)
    monkeypatch.undo()
    assert path.read_bytes() == b"previous export"  # the old file is untouched
    assert os.listdir(tmp_path) == ["big.bin"]  # the temporary file is gone


def test_failed_rename_removes_the_temporary_file(tmp_path, monkeypatch):
    def no_space(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(export.os, "replace", no_space)
    with pytest.raises(ExportError, match="disk is full"):
        atomic_write_text(tmp_path / "out.txt", "data")
    assert os.listdir(tmp_path) == []
