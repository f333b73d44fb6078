"""The `e` key saves the figures; `--replay` steps through a recorded trace with every pane."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pytest

from engine.events import SamplingConfig
from engine.runtime.sampler import Sampler
from engine.views.replay import read_trace
from engine.views.trace import TraceWriter
from tests.conftest import replay_of
from tests.tui.conftest import notifications, settle, wait_until
from tui.app import DEFAULT_PROMPT, make_app
from tui.widgets.attention_map import AttentionMap
from tui.widgets.candidates import CandidatesView
from tui.widgets.parameters import ParametersView
from tui.widgets.timeline import Timeline

SIZE = (100, 30)
RECORDED_TEMPERATURE = 1.3


@pytest.fixture(scope="module")
def recording(toy, tmp_path_factory):
    """Six tokens sampled at T=1.3 and traced as tfund-tui does, one of them undone."""
    path = tmp_path_factory.mktemp("replay") / "session.jsonl"
    sampler = Sampler(toy, SamplingConfig(temperature=RECORDED_TEMPERATURE, seed=7))
    sampler.set_prompt(DEFAULT_PROMPT)
    with TraceWriter(path) as trace:
        trace.write_record({"session": {"model": "toy", "prompt": DEFAULT_PROMPT}})
        for _ in range(7):
            trace.write(sampler.step())
        sampler.undo()
        trace.write_record({"undo": len(sampler.tokens)})
    return path


async def settle_replay(pilot) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: replay_of(app) is not None and app.session.engine.idle, "the replay")
    await pilot.pause()


# ---- export -------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_e_saves_svg_attention_candidates_and_trace_that_parse(toy, tmp_path):
    export_dir = tmp_path / "figures"
    app = make_app(model=toy, config=SamplingConfig(temperature=0.0), export_dir=export_dir, deterministic=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("n", "n", "n", "]")
        await settle(pilot)
        await pilot.press("e")
        await wait_until(pilot, lambda: any("Saved" in n for n in notifications(app)), "the export notification")
        assert str(export_dir) in " ".join(notifications(app))
        pieces = app.session.transcript.pieces
        generated = [p.token_id for p in app.session.transcript.positions if p.generated]
    files = {path.name.split("-2")[0]: path for path in export_dir.iterdir()}  # stem before the timestamp
    assert set(files) == {"screen", "attention-l1-mean", "candidates", "trace"}
    assert len({path.suffix for path in export_dir.iterdir()}) == 4  # .svg .json .txt .jsonl; no temp files left
    svg = ElementTree.parse(export_dir / next(p.name for p in export_dir.iterdir() if p.suffix == ".svg"))
    assert svg.getroot().tag.endswith("svg")
    attention = json.loads(next(p for p in export_dir.iterdir() if p.suffix == ".json").read_text())
    assert attention["tokens"] == pieces and attention["layer"] == 1
    matrix = attention["attention"]  # [T, T], causal rows that sum to 1
    assert len(matrix) == len(pieces) and all(
        abs(sum(row) - 1) < 1e-3 and row[i + 1 :] == [0] * (len(row) - i - 1) for i, row in enumerate(matrix)
    )
    trace = read_trace(files["trace"])
    assert [step.token_id for step in trace.steps] == generated and trace.prompt == DEFAULT_PROMPT
    assert app.session.transcript.candidates[0].text.strip() in files["candidates"].read_text()


@pytest.mark.anyio
async def test_export_into_an_unwritable_place_says_so_and_the_app_stays(toy, tmp_path):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("")
    app = make_app(model=toy, config=SamplingConfig(temperature=0.0), export_dir=a_file / "exports", deterministic=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await wait_until(pilot, lambda: any("Could not save" in n for n in notifications(app)), "the error notification")
        await pilot.press("n")
        await settle(pilot)
        assert app.session.transcript.n_generated == 1 and app.is_running
    assert a_file.read_text() == ""


# ---- replay ---------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_replay_steps_forward_and_back_through_the_recorded_tokens(toy, recording):
    recorded = read_trace(recording).steps
    app = make_app(model=toy, replay=recording, deterministic=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle_replay(pilot)
        assert app.session.transcript.n_generated == 0 and "replay 0/6" in app.main_screen.query_one("#generation-pane").border_subtitle
        await pilot.press("n", "n", "n")
        await settle_replay(pilot)
        generated = [p for p in app.session.transcript.positions if p.generated]
        assert [p.token_id for p in generated] == [step.token_id for step in recorded[:3]]
        assert "".join(app.session.transcript.pieces) == DEFAULT_PROMPT + "".join(step.text for step in recorded[:3])
        assert recorded[0].p_raw is not None and generated[0].p_raw == pytest.approx(recorded[0].p_raw, abs=1e-6)
        assert f"{RECORDED_TEMPERATURE}" in app.main_screen.query_one(ParametersView).render().plain
        assert app.main_screen.query_one(AttentionMap).matrix.shape == (len(app.session.transcript.positions),) * 2
        # the candidates are the model's for the next recorded token, and that token is among them
        assert recorded[3].token_id in [c.token_id for c in app.session.transcript.candidates]
        app.main_screen.select_token(1)  # time travel to a prompt token: the model recomputes its prediction
        await wait_until(pilot, lambda: app.session.transcript.positions[1].step is not None, "the prompt token's step")
        assert (
            app.main_screen.query_one(CandidatesView).candidates[0].token_id
            == replay_of(app).sampler.prediction_before(1).candidates[0].token_id
        )
        await pilot.press("backspace")
        await settle_replay(pilot)
        assert app.session.transcript.n_generated == 2
        await pilot.press("g")  # plays to the end
        await wait_until(pilot, lambda: app.session.transcript.n_generated == len(recorded) and app.session.engine.idle, "the end")
        assert [p.token_id for p in app.session.transcript.positions if p.generated] == [s.token_id for s in recorded]
        await pilot.press("n")
        await wait_until(pilot, lambda: any("end of the recording" in n for n in notifications(app)), "the end note")
        await pilot.press("r")
        await settle_replay(pilot)
        assert app.session.transcript.n_generated == 0


@pytest.mark.anyio
async def test_replay_time_travel_leaves_no_stale_candidate_rows_and_the_timeline_shows_the_recorded_entropy(recording, tmp_path):
    """Defects 12 and 13: a trace keeps 5 candidates per step where the screen drew 9; its ent row is the trace's."""
    elsewhere = without_its_model(recording, tmp_path)
    recorded = read_trace(elsewhere).steps
    app = make_app(model=str(tmp_path / "gone"), replay=elsewhere, deterministic=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle_replay(pilot)
        await pilot.press(*["n"] * 5)
        await settle_replay(pilot)
        generated = [p for p in app.session.transcript.positions if p.generated]
        assert [p.entropy for p in generated] == pytest.approx([step.entropy for step in recorded[: len(generated)]])
        assert len(generated) >= 5 and recorded[0].entropy > 0
        timeline = app.main_screen.query_one(Timeline)
        assert "ent≤0.0" not in "".join(timeline.render_line(y).text for y in range(timeline.size.height))
        view = app.main_screen.query_one(CandidatesView)
        view.show(view.candidates * 2)  # nine rows drawn, as a live step's
        await pilot.pause()
        await pilot.press("left")
        await pilot.pause()
        assert len(view.candidates) == 5 and view.candidates[0].token_id == recorded[len(generated) - 1].candidates[0].token_id
        region = view.content_region
        screen = app.screen._compositor.render_strips()  # what the terminal shows (Textual's one private read): a stale row stays
        rows = [strip.crop(region.x, region.right).text for strip in screen[region.y + len(view.strips) : region.bottom]]
        assert rows and all(not row.strip() for row in rows)


@pytest.mark.anyio
async def test_replay_refuses_settings_and_forced_tokens_with_a_sentence(toy, recording):
    app = make_app(model=toy, replay=recording, deterministic=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle_replay(pilot)
        await pilot.press("T", "1")
        await settle_replay(pilot)
        assert sum("This is a replay" in n for n in notifications(app)) == 1  # said once, not once per key
        assert app.session.settings.temperature == RECORDED_TEMPERATURE and app.session.transcript.n_generated == 0


def without_its_model(recording, tmp_path):
    """A copy of the recording whose model no longer exists: replayed as recorded."""
    elsewhere = tmp_path / "session.jsonl"
    lines = recording.read_text().splitlines()
    header = json.loads(lines[0])
    header["session"]["model"] = str(tmp_path / "gone")  # the model the trace names no longer exists
    elsewhere.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    return elsewhere


@pytest.mark.anyio
async def test_replay_without_the_model_shows_what_was_recorded(recording, tmp_path):
    elsewhere = without_its_model(recording, tmp_path)
    recorded = read_trace(elsewhere).steps
    app = make_app(model=str(tmp_path / "gone"), replay=elsewhere, deterministic=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle_replay(pilot)
        assert any("Showing what was recorded" in n and "gone" in n for n in notifications(app))
        assert replay_of(app).recomputes is False
        await pilot.press("n", "n")
        await settle_replay(pilot)
        assert app.session.transcript.pieces == [DEFAULT_PROMPT, recorded[0].text, recorded[1].text]
        assert [c.token_id for c in app.session.transcript.candidates] == [c.token_id for c in recorded[2].candidates]
        assert [e.text for e in app.session.transcript.lens] == [e.text for e in recorded[1].lens]
        assert "as recorded" in app.main_screen.query_one("#generation-pane").border_subtitle
        await pilot.press("left")  # time travel: the second recorded token's step, as recorded
        await pilot.pause()
        view = app.main_screen.query_one(CandidatesView)
        assert [c.token_id for c in view.candidates] == [c.token_id for c in recorded[1].candidates]
        assert view.chosen[0] == recorded[1].token_id
        await pilot.press("left", "left")  # the prompt, one block here: nothing before it predicts it
        await pilot.pause()
        assert view.candidates == [] and view.heading.startswith("token 1 of 3 · prompt token")


@pytest.fixture(scope="module")
def three_sessions(toy, tmp_path_factory):
    """Launch (3 tokens), a reset (2 tokens), a new prompt (3 tokens), traced as tfund-tui does."""
    path = tmp_path_factory.mktemp("sessions") / "sessions.jsonl"
    sampler = Sampler(toy, SamplingConfig(temperature=1.0, seed=2))
    sessions = []
    with TraceWriter(path) as trace:
        for prompt, n_tokens in [(DEFAULT_PROMPT, 3), (DEFAULT_PROMPT, 2), ("Once upon a time,", 3)]:
            sampler.set_prompt(prompt)
            trace.write_record({"session": {"model": "toy", "prompt": prompt}})
            events = [sampler.step() for _ in range(n_tokens)]
            for event in events:
                trace.write(event)
            sessions.append(prompt + "".join(event.text for event in events))
    return path, sessions


@pytest.mark.anyio
async def test_replay_plays_every_session_in_order_and_says_which(toy, three_sessions, monkeypatch):
    from tui.screens.main import MainScreen

    path, texts = three_sessions
    app = make_app(model=toy, replay=path, deterministic=True)
    shown = []  # the steps applied in each context the screen drew
    on_context_ready = MainScreen.on_context_ready

    def record(screen, message):
        on_context_ready(screen, message)
        shown.append(screen.session.replay_at[0] if screen.session.replay_at else None)

    monkeypatch.setattr(MainScreen, "on_context_ready", record)

    def status() -> str:
        return app.main_screen.query_one("#generation-pane").border_subtitle

    async with app.run_test(size=SIZE) as pilot:
        await settle_replay(pilot)
        assert "replay 0/8 · session 1/3" in status()
        await pilot.press("n", "n", "n")
        await settle_replay(pilot)
        assert "".join(app.session.transcript.pieces) == texts[0] and "replay 3/8 · session 1/3" in status()
        await pilot.press("n", "n")
        await settle_replay(pilot)
        assert "".join(app.session.transcript.pieces) == texts[1] and "replay 5/8 · session 2/3" in status()
        shown.clear()
        await pilot.press("g")  # plays through the last session
        await wait_until(pilot, lambda: "replay 8/8" in status() and app.session.engine.idle, "the end")
        assert "".join(app.session.transcript.pieces) == texts[2] and "session 3/3" in status()
        assert shown == [6, 7, 8]  # every step drawn on its way, none skipped
        await pilot.press("backspace", "backspace", "backspace")  # back across the new prompt
        await settle_replay(pilot)
        assert "".join(app.session.transcript.pieces) == texts[1] and "session 2/3" in status()


@pytest.mark.parametrize("content", ["", '{"session": {"model": "toy", "prompt": "Hi"}}\n'], ids=["empty", "header only"])
def test_a_trace_with_no_token_steps_exits_2_with_one_line(tmp_path, content):
    empty = tmp_path / "empty.jsonl"
    empty.write_text(content)
    for flags in (["--replay", str(empty)], ["--replay", str(empty), "--model", "toy"]):
        result = run_tui(*flags)
        assert result.returncode == 2 and result.stdout == "", result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "--replay" in lines[0] and "no token steps" in lines[0], result.stderr


# ---- flags ----------------------------------------------------------------------------------------
def run_tui(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui", *flags], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "flags, names",
    [
        (["--replay", "/no/such/trace.jsonl"], ["--replay", "cannot read"]),
        (["--replay", __file__], ["--replay", "not a tfund trace"]),
        (["--port", "8123"], ["--port", "--serve"]),
        (["--serve", "--port", "70000"], ["--port", "65535"]),
    ],
)
def test_bad_replay_and_serve_flags_exit_2_with_one_line(flags, names):
    result = run_tui(*flags)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfund-tui: error: "), result.stderr
    for name in names:
        assert name in lines[0]


def test_replay_and_trace_together_is_refused(recording, tmp_path):
    result = run_tui("--replay", str(recording), "--trace", str(tmp_path / "t.jsonl"))
    assert result.returncode == 2 and "leave out --trace" in result.stderr
    assert not (tmp_path / "t.jsonl").exists()


@pytest.mark.anyio
async def test_help_names_the_save_key_replay_and_serve(toy):
    app = make_app(model=toy, deterministic=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        text = " ".join(str(static.content) for static in app.screen.query(".help-section, .help-note"))
        assert "\ne " in text and "Save the figures" in text
        for flag in ("--replay FILE.jsonl", "--export-dir DIR", "--serve [--port N]"):
            assert flag in text
