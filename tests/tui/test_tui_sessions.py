"""Sessions whose trace must still equal the screen (reset, a new prompt, undo after the window slid),
and the GPU running out of memory (simulated: no GPU here). Mashed keys, resizing, Ctrl+C and keys
pressed while loading are in tests/tui/test_tui_faults.py and tests/e2e/test_tui_e2e.py.
"""

import dataclasses
import json
import time

import pytest
import torch
from textual import events
from textual.widgets import Static
from transformers import GPT2LMHeadModel
from transformers.utils import logging as hf_logging

import engine.cli as cli
from engine.events import SamplingConfig
from engine.views.replay import read_trace
from tests.conftest import sampler_of
from tests.tui.conftest import SIZE, endless, notifications, settle, wait_until
from tui.app import DEFAULT_PROMPT, make_app
from tui.screens.error import ErrorScreen
from tui.widgets.generation import TokenLines, shown_piece

LOAD_OOM_SENTENCE = "not enough memory on cuda for 'toy'; use --device cpu or a smaller model"
# every main-screen key that stays on the main screen, as (key, character); g, i, b, ?, c, w, e, q are not here
STAYING_KEYS = [
    *[(key, key) for key in "ntTkKpPmMsSr123456789"],
    ("space", " "),
    ("left_square_bracket", "["),
    ("right_square_bracket", "]"),
    ("left_curly_bracket", "{"),
    ("right_curly_bracket", "}"),
    ("backspace", None),
    ("left", None),
    ("right", None),
    ("end", None),
]
CHARACTERS = dict(STAYING_KEYS) | {"g": "g", "i": "i", "escape": None}


def send_keys(app, keys: list[str]) -> None:
    """Key events as the terminal driver posts them, without waiting for the app to handle each one."""
    for key in keys:
        app.post_message(events.Key(key, CHARACTERS[key]))


def on_screen(app) -> str:
    return app.main_screen.query_one("#generation #tokens", TokenLines).plain


def assert_trace_matches_screen(app, trace_path) -> None:
    """The trace, replayed (undo lines and resets applied), is the text and the tokens the panes show."""
    lines = trace_path.read_text(encoding="utf-8").splitlines()
    assert all(isinstance(json.loads(line), dict) for line in lines)  # nothing half-written
    recorded = read_trace(trace_path)
    positions = app.session.transcript.positions
    generated = [p for p in positions if p.generated]  # the window may have slid past older ones
    assert len(recorded.steps) == app.session.transcript.n_generated
    newest = recorded.steps[len(recorded.steps) - len(generated) :]
    assert [step.token_id for step in newest] == [p.token_id for p in generated]
    assert [step.text for step in newest] == [p.piece for p in generated]
    recorded_text = recorded.prompt + "".join(step.text for step in recorded.steps)
    shown_text = "".join(p.piece for p in positions)
    slid = len(generated) < app.session.transcript.n_generated or sampler_of(app).prompt_dropped > 0
    assert recorded_text.endswith(shown_text) if slid else recorded_text == shown_text
    assert on_screen(app) == "".join(shown_piece(p.piece) for p in positions)


async def wait_for_idle_engine(pilot) -> None:
    """Pause a run (and drop a queued one) until the engine has nothing left to do: no deadlock."""
    app = pilot.app
    deadline = time.monotonic() + 60
    while not app.session.engine.idle:
        assert time.monotonic() < deadline, "the engine never went idle"
        if app.session.engine.running and not app.session.engine.pausing:
            send_keys(app, ["g"])  # pauses the run, or takes back a queued one
        await pilot.pause(0.05)
    await settle(pilot)


# ---- a) 10,000 random key presses during runs -------------------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize("scenario", ["reset", "new prompt", "undo after the window slid"])
async def test_the_trace_stays_equal_to_the_screen(toy, tmp_path, scenario):
    """The edits a random session hits now and then, each on purpose."""
    trace = tmp_path / "trace.jsonl"
    window = dataclasses.replace(endless(toy), info=dataclasses.replace(toy.info, n_positions=24))
    app = make_app(model=window, config=SamplingConfig(temperature=0.0), trace=trace, palette="color", deterministic=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        if scenario == "reset":
            await pilot.press("n", "n", "n", "r")
        elif scenario == "new prompt":
            await pilot.press("n", "n", "i", "ctrl+a", *"Once upon a time there was a girl who", "enter")
            await settle(pilot)
            await pilot.press("n")
        else:
            for _ in range(4):  # prompt + 20 tokens > 24: the window slides on the last one
                await pilot.press(*["n"] * 5)  # in fives: a slow machine must not fill the 16-key queue
                await settle(pilot)
            prompt_tokens = len(toy.tokenizer.encode(DEFAULT_PROMPT))
            assert len(app.session.transcript.positions) < prompt_tokens + app.session.transcript.n_generated  # it slid
            await pilot.press("backspace", "n")
        await settle(pilot)
        assert_trace_matches_screen(app, trace)


# ---- b) the terminal shrunk to 20×8 and back during a run -------------------------------------
def out_of_memory(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 8 GiB")


@pytest.fixture
def cuda_without_room(monkeypatch):
    """load_model picks 'cuda' and moving the model there runs out of memory; CPU moves still work."""
    to = GPT2LMHeadModel.to

    def to_device(model, *args, **kwargs):
        if "cuda" in (str(arg) for arg in (*args, *kwargs.values())):
            out_of_memory()
        return to(model, *args, **kwargs)

    monkeypatch.setattr("engine.runtime.engines.resolve_device", lambda device: "cuda")
    monkeypatch.setattr(GPT2LMHeadModel, "to", to_device)


@pytest.fixture
def no_loading_bar():
    """As in a fresh `tfund` process, which turns transformers' loading bar off before importing it."""
    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    yield
    if was_on:
        hf_logging.enable_progress_bar()


def test_generate_out_of_memory_while_loading_exits_1_with_one_line(cuda_without_room, no_loading_bar, capsys):
    code = cli.main(["generate", "--model", "toy", "--device", "cuda", "--max-new-tokens", "8"])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert captured.err == f"tfund: error: {LOAD_OOM_SENTENCE}\n"


@pytest.mark.anyio
async def test_out_of_memory_while_loading_shows_the_sentence_and_the_app_stays(cuda_without_room):
    app = make_app(model="toy", device="cuda", palette="color")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorScreen), "the error modal")
        await pilot.pause()
        message = str(app.screen.query_one("#error-message", Static).content)
        assert message == LOAD_OOM_SENTENCE
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.main_screen
        await pilot.press("n", "g")
        assert app.is_running and sampler_of(app) is None
        assert "The model is not loaded yet." not in notifications(app)  # it never will be: say so
        assert any(m.startswith("No model: loading it failed") for m in notifications(app)), notifications(app)


@pytest.mark.anyio
async def test_a_model_that_failed_to_load_says_why_on_every_later_key(tmp_path):
    app = make_app(model=str(tmp_path / "nope"), device="cpu", palette="color")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorScreen), "the error modal")
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        said = [m for m in notifications(app) if m.startswith("No model: loading it failed (")]
        assert said and "no model directory" in said[0] and "start tfund-tui again" in said[0], notifications(app)


@pytest.mark.anyio
async def test_out_of_memory_mid_run_shows_the_sentence_and_generation_goes_on(toy, monkeypatch, tmp_path):
    trace = tmp_path / "trace.jsonl"
    endless_toy = endless(toy)
    app = make_app(
        model=endless_toy, config=SamplingConfig(temperature=0.0, max_new_tokens=100_000), trace=trace, palette="color", deterministic=True
    )
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        monkeypatch.setattr(
            "tui.handlers.GenerationHandler.batches_per_second", 0.01
        )  # as on a fast GPU: the run's tokens wait in one batch
        forward = sampler_of(app).backend.forward
        calls = iter(range(5))
        monkeypatch.setattr(
            sampler_of(app).backend, "forward", lambda ids: forward(ids) if next(calls, None) is not None else out_of_memory()
        )
        send_keys(app, ["g"])
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorScreen), "the error modal")
        await pilot.pause()
        message = str(app.screen.query_one("#error-message", Static).content)
        assert "ran out of memory" in message and "--device cpu" in message and "CUDA out of memory" not in message
        monkeypatch.undo()  # memory is free again
        await pilot.press("escape")
        await wait_for_idle_engine(pilot)
        assert app.session.transcript.n_generated == 5  # the tokens before the failed one are on screen; the failed one nowhere
        await pilot.press("n")
        await settle(pilot)
        assert app.session.transcript.n_generated == 6 and app.is_running
        assert_trace_matches_screen(app, trace)


@pytest.mark.anyio
async def test_a_step_that_fails_after_its_token_was_shown_takes_the_token_off_the_screen(toy, monkeypatch):
    """The token is drawn as soon as it is chosen; the forward pass that reads it in runs out of memory."""
    from tui.screens.main import MainScreen

    app = make_app(model=toy, config=SamplingConfig(temperature=0.0), palette="color", deterministic=True)
    drawn = []  # the text's tokens once the chosen one was drawn
    on_token_chosen = MainScreen.on_token_chosen

    def record(screen, message):
        on_token_chosen(screen, message)
        drawn.append(len(screen.query_one(TokenLines).pieces))

    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        shown_before = list(app.main_screen.query_one(TokenLines).pieces)
        monkeypatch.setattr(MainScreen, "on_token_chosen", record)
        monkeypatch.setattr(sampler_of(app).backend, "forward", out_of_memory)
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorScreen), "the error modal")
        assert drawn == [len(shown_before) + 1]  # it was on screen
        monkeypatch.undo()
        await pilot.press("escape")
        await wait_for_idle_engine(pilot)
        await pilot.pause()
        assert app.session.transcript.n_generated == 0
        assert app.main_screen.query_one(TokenLines).pieces == shown_before  # the chosen token is gone again
        await pilot.press("n")
        await settle(pilot)
        assert app.session.transcript.n_generated == 1  # generation goes on
