"""Replay: read a recorded trace (undo lines, truncation, resets) and step through it with or without a model."""

import json

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from engine.events import SamplingConfig
from engine.runtime.loading import load_model
from engine.runtime.sampler import Sampler
from engine.views.replay import ReplayError, ReplaySession, load_trace, read_trace
from engine.views.trace import TraceWriter

PROMPT = "In a small village,"


@pytest.fixture(scope="module")
def recorded(toy, tmp_path_factory):
    """A session traced as the TUI does: header, steps, an undo, a forced token, a temperature change."""
    path = tmp_path_factory.mktemp("trace") / "session.jsonl"
    sampler = Sampler(toy, SamplingConfig(temperature=1.0, seed=3))
    sampler.set_prompt(PROMPT)
    kept = []
    with TraceWriter(path) as trace:
        trace.write_record({"session": {"model": "toy", "prompt": PROMPT}})
        for _ in range(4):
            kept.append(sampler.step())
            trace.write(kept[-1])
        undone = sampler.step()
        trace.write(undone)
        sampler.undo()
        trace.write_record({"undo": undone.position})
        kept.append(sampler.force(kept[0].candidates[1].token_id))
        trace.write(kept[-1])
        sampler.set_config(temperature=0.4)
        for _ in range(2):
            kept.append(sampler.step())
            trace.write(kept[-1])
    return path, kept, sampler


def test_read_trace_applies_undo_and_reads_the_header(recorded):
    path, kept, _ = recorded
    session = read_trace(path)
    assert session.prompt == PROMPT and session.model == "toy" and not session.truncated
    assert [s.token_id for s in session.steps] == [ev.token_id for ev in kept]
    assert [s.position for s in session.steps] == [ev.position for ev in kept]
    assert session.steps[4].forced and session.steps[-1].settings.temperature == 0.4
    assert session.steps[0].candidates[0].token_id == kept[0].candidates[0].token_id
    assert len(session.steps[0].lens) == len(kept[0].lens)
    assert [s.token_id for s in load_trace(path)] == [s.token_id for s in session.steps]


def test_replay_with_the_model_recomputes_every_pane(recorded, toy):
    path, kept, sampler = recorded
    session = read_trace(path)
    replay = ReplaySession(session.steps, model=toy, prompt=session.prompt)
    assert replay.recomputes
    prompt_len = kept[0].position
    frames = []
    while (frame := replay.forward()) is not None:
        frames.append(frame)
    assert replay.position == len(kept) == len(frames)
    for frame, ev in zip(frames, kept):
        assert frame.event.token_id == ev.token_id and frame.matches_recording
        T = prompt_len + frame.position
        assert frame.attention.shape == (toy.info.n_layer, toy.info.n_head, T, T)
        np.testing.assert_allclose(frame.event.attention, ev.attention, atol=1e-5)
        recorded_p = [c.p_raw for c in frame.step.candidates]
        np.testing.assert_allclose([c.p_raw for c in frame.event.candidates[: len(recorded_p)]], recorded_p, atol=2e-6)
    assert frames[-1].text == sampler.text
    np.testing.assert_allclose(frames[-1].attention, sampler.attention_matrix(), atol=1e-5)


def test_replay_back_and_forward_again(recorded, toy):
    path, kept, _ = recorded
    session = read_trace(path)
    replay = ReplaySession(session.steps, model=toy, prompt=session.prompt)
    replay.seek(5)
    at_five = replay.current()
    back = replay.back()
    assert back.position == 4 and back.event.token_id == kept[3].token_id
    assert back.attention.shape[-1] == at_five.attention.shape[-1] - 1
    again = replay.forward()
    np.testing.assert_allclose(again.attention, at_five.attention, atol=1e-6)
    assert replay.seek(0).step is None and replay.back() is None
    assert replay.current().text == PROMPT
    replay.seek(len(kept))
    assert replay.forward() is None


def test_replay_without_a_model_shows_what_was_recorded(recorded):
    path, kept, _ = recorded
    session = read_trace(path)
    replay = ReplaySession(session.steps, prompt=session.prompt)
    assert not replay.recomputes
    frame = replay.seek(3)
    assert frame.event is None and frame.attention is None
    assert frame.tokens == [ev.text for ev in kept[:3]]
    assert frame.text == PROMPT + "".join(ev.text for ev in kept[:3])
    assert [c.token_id for c in frame.candidates] == [c.token_id for c in kept[2].candidates[:5]]
    np.testing.assert_allclose(frame.step.norms, kept[2].norms, atol=1e-3)


def test_truncated_last_line_is_skipped(recorded, tmp_path):
    path, kept, _ = recorded
    cut = tmp_path / "cut.jsonl"
    full = path.read_text(encoding="utf-8")
    cut.write_text(full + full.splitlines()[-1][:40], encoding="utf-8")  # Ctrl+C mid-write
    session = read_trace(cut)
    assert session.truncated and [s.token_id for s in session.steps] == [ev.token_id for ev in kept]


def test_reset_replaces_the_steps_it_rewinds(tmp_path):
    def line(position, token_id):
        return json.dumps({"position": position, "id": token_id, "text": f"t{token_id}", "settings": {}, "candidates": []})

    path = tmp_path / "reset.jsonl"
    path.write_text("\n".join([line(5, 1), line(6, 2), line(7, 3), line(5, 4), line(6, 5)]) + "\n")
    assert [s.token_id for s in load_trace(path)] == [4, 5]


def test_trailing_undo_lines_remove_the_last_steps(tmp_path):
    path = tmp_path / "undo.jsonl"
    tokens = [json.dumps({"position": p, "id": p, "text": "x"}) for p in (5, 6, 7)]
    path.write_text("\n".join(tokens + ['{"undo": 7}', '{"undo": 6}']) + "\n")
    assert [s.token_id for s in load_trace(path)] == [5]


@pytest.mark.parametrize(
    "content, message",
    [
        ("hello world\n", "not a tfund trace: line 1"),
        ('{"name": "not a trace"}\n', "neither a token event nor an undo"),
        ('{"position": 1, "id": 2, "text": "a"}\n{oops\n{"position": 2, "id": 3, "text": "b"}\n', "line 2 is not a JSON object"),
        ('{"position": "x", "id": 2, "text": "a"}\n', "malformed token event"),
        ('{"position": 1, "id": 2, "text": "a", "settings": {"temperature": -1}}\n', "malformed token event"),
    ],
)
def test_non_trace_files_are_one_sentence(tmp_path, content, message):
    path = tmp_path / "file.jsonl"
    path.write_text(content)
    with pytest.raises(ReplayError, match=message):
        load_trace(path)


@pytest.mark.parametrize(
    "event, reason",
    [
        ({"position": "abc", "id": 2, "text": "a"}, "position and id must be whole numbers >= 0"),
        ({"position": -3, "id": 2, "text": "a"}, "position and id must be whole numbers >= 0"),
        ({"position": 1, "id": 2, "text": "a", "p_raw": None}, "probabilities numbers"),
        ({"position": 1, "id": 2, "text": "a", "settings": 3}, "its settings are not an object"),
        ({"position": 1, "id": 2, "text": "a", "settings": {"top_p": 0}}, "top-p must be in (0, 1]"),
    ],
)
def test_a_malformed_event_is_named_in_words_not_python_types(tmp_path, event, reason):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(event) + "\n")
    with pytest.raises(ReplayError) as error:
        load_trace(path)
    message = str(error.value)
    assert f"'{path}' line 1 is a malformed token event: " in message and reason in message
    assert not any(word in message for word in ("Error", "NoneType", "literal", "float()", "int()"))


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(ReplayError, match="cannot read the trace"):
        load_trace(tmp_path / "missing.jsonl")
    (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(ReplayError, match="cannot read the trace .*: it is not UTF-8 text") as error:
        load_trace(tmp_path / "binary.jsonl")
    assert "UnicodeDecodeError" not in str(error.value)


def test_a_trace_from_another_model_is_refused(toy, tmp_path):
    path = tmp_path / "other.jsonl"
    path.write_text(json.dumps({"position": 3, "id": toy.info.vocab_size + 7, "text": "x"}) + "\n")
    with pytest.raises(ReplayError, match="another model"):
        ReplaySession(load_trace(path), model=toy, prompt=PROMPT)


def test_a_replay_with_the_model_keeps_each_step_as_fully_as_the_live_session(recorded, toy):
    """Audit D3: 10 candidates, cosines, and the first token's lens, as the live session kept them."""
    path, kept, _ = recorded
    session = read_trace(path)
    assert len(session.steps[0].candidates) == 5  # what the trace holds
    replay = ReplaySession(session.steps, model=toy, prompt=session.prompt)
    replay.seek(len(kept))
    replay.back()  # back and forward again: the kept views follow
    replay.forward()
    views = [step.view for step in replay.applied]
    assert len(views) == len(kept)
    fresh = Sampler(toy, SamplingConfig())
    fresh.set_prompt(PROMPT)
    before = [(fresh.last_lens, fresh.last_norms, fresh.last_cosines)] + [(ev.lens, ev.norms, ev.cosines) for ev in kept[:-1]]
    for view, event, (lens, norms, cosines) in zip(views, kept, before):  # what chose each token, in the live session
        assert [c.token_id for c in view.candidates] == [c.token_id for c in event.candidates] and len(view.candidates) == 10
        np.testing.assert_allclose([c.p for c in view.candidates], [c.p for c in event.candidates], atol=1e-5)
        assert [e.token_id for e in view.lens] == [e.token_id for e in lens] and len(lens) == toy.info.n_layer
        np.testing.assert_allclose(view.norms, norms, rtol=1e-4)
        np.testing.assert_allclose(view.cosines, cosines, rtol=1e-4, atol=1e-5)
        assert view.cosines.shape == (toy.info.n_layer,)
    without_model = ReplaySession(session.steps, prompt=session.prompt)
    without_model.seek(3)
    assert [step.view for step in without_model.applied] == [None] * 3  # only what was recorded


def test_back_across_a_window_slide_restores_the_context(toy, toy_tokenizer, tmp_path):
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=16, vocab_size=toy.info.vocab_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        GPT2LMHeadModel(config).save_pretrained(tmp_path / "short")
    toy_tokenizer.save_pretrained(tmp_path / "short")
    short = load_model(str(tmp_path / "short"), device="cpu")
    sampler = Sampler(short, SamplingConfig(temperature=1.0, seed=0))
    sampler.set_prompt(PROMPT)
    path = tmp_path / "slide.jsonl"
    with TraceWriter(path) as trace:
        events = [sampler.step() for _ in range(14)]
        for ev in events:
            trace.write(ev)
    assert any(ev.slid for ev in events)
    replay = ReplaySession(load_trace(path), model=short, prompt=PROMPT)
    slid_at = next(i for i, ev in enumerate(events) if ev.slid) + 1  # the position after the sliding step
    before = replay.seek(slid_at - 1).attention
    replay.seek(len(events))
    assert replay.current().event.token_id == events[-1].token_id
    np.testing.assert_allclose(replay.seek(slid_at - 1).attention, before, atol=1e-6)


OTHER_PROMPT = "Once upon a time,"


def record_sessions(model, path, plan):
    """Trace sessions as the TUI does: a session line at launch, at each reset and at each new prompt."""
    sampler = Sampler(model, SamplingConfig(temperature=1.0, seed=5))
    sessions = []
    with TraceWriter(path) as trace:
        for prompt, n_tokens in plan:
            sampler.set_prompt(prompt)
            trace.write_record({"session": {"model": "toy", "prompt": prompt}})
            events = [sampler.step() for _ in range(n_tokens)]
            for event in events:
                trace.write(event)
            sessions.append((prompt, events))
    return sessions


def test_a_trace_of_several_sessions_replays_every_one_in_order(toy, tmp_path):
    path = tmp_path / "sessions.jsonl"
    plan = [(PROMPT, 3), (PROMPT, 0), (PROMPT, 2), (OTHER_PROMPT, 3)]  # launch, reset at once, reset, a new prompt
    recorded = record_sessions(toy, path, plan)
    recording = read_trace(path)
    assert [len(s.steps) for s in recording.sessions] == [3, 0, 2, 3] and recording.n_steps == 8
    assert recording.prompt == OTHER_PROMPT and len(recording.steps) == 3  # .steps: the last session, as before
    shown = [(prompt, events) for prompt, events in recorded if events]  # an empty session has nothing to step through
    for model in (toy, None):
        replay = ReplaySession.of(recording, model=model)
        assert len(replay.sessions) == 3 and len(replay.steps) == 8 and replay.recomputes == (model is not None)
        frames = [replay.forward() for _ in range(8)]
        assert replay.forward() is None
        expected = [
            (s, prompt + "".join(e.text for e in events[: i + 1])) for s, (prompt, events) in enumerate(shown) for i in range(len(events))
        ]
        assert [(f.session, f.text) for f in frames] == expected
        if model is not None:  # the model re-read each session's own prompt: its tokens are the recorded ones
            assert all(f.matches_recording for f in frames)
            assert [f.event.position for f in frames] == [e.position for _, events in shown for e in events]
            assert frames[-1].tokens[-1] == shown[-1][1][-1].text and frames[3].tokens[-1] == shown[1][1][0].text
        # back across a session's start shows the whole session before it again
        frame = replay.seek(3)
        assert frame.session == 0 and frame.text == expected[2][1]
        if model is not None:
            np.testing.assert_allclose(frame.attention, frames[2].attention, atol=1e-6)
        assert replay.seek(4).session == 1 and replay.seek(0).text == PROMPT


def test_positions_after_a_slide_count_the_dropped_tokens_in_the_trace(short_context_toy, tmp_path):
    path = tmp_path / "slide.jsonl"
    sampler = Sampler(short_context_toy, SamplingConfig(temperature=1.0, seed=0))
    sampler.set_prompt(PROMPT)
    with TraceWriter(path) as trace:
        events = [sampler.force(short_context_toy.tokenizer.encode(" the")[0]) for _ in range(30)]
        for event in events:
            trace.write(event)
    assert any(event.slid for event in events)
    steps = load_trace(path)
    assert [s.position for s in steps] == list(range(steps[0].position, steps[0].position + 30))
