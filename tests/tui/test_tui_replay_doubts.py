"""A trace that replays but is not quite what was recorded is named: cut off mid-line, or another model."""

import json

from engine.views.replay import read_trace
from tui.handlers import trace_doubts

EVENT = {"position": 5, "id": 7, "text": " a"}


def test_a_trace_cut_mid_line_or_recorded_with_another_model_is_named(tmp_path, toy):
    whole = tmp_path / "whole.jsonl"
    whole.write_text(json.dumps({"session": {"model": "toy", "prompt": "hi"}}) + "\n" + json.dumps(EVENT) + "\n")
    assert trace_doubts(read_trace(whole), toy) == []
    cut = tmp_path / "cut.jsonl"
    cut.write_text(whole.read_text() + json.dumps({**EVENT, "position": 6})[:20])
    assert trace_doubts(read_trace(cut), toy) == ["The trace's last line was cut off mid-write; it is skipped."]
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"session": {"model": "/nonexistent/model", "prompt": "hi"}}) + "\n" + json.dumps(EVENT) + "\n")
    assert trace_doubts(read_trace(other), toy) == ["The trace was recorded with '/nonexistent/model'; it is recomputed with 'toy'."]
    assert trace_doubts(read_trace(other), None) == []  # not recomputed: what was recorded is shown
