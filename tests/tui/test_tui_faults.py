"""Sessions under stress: keys mashed during a run, a tiny terminal, a run asked for while loading, out of memory."""

import random
import threading

import pytest
import torch
from textual import events
from transformers import GPT2LMHeadModel

import engine.runtime.loading as models
from engine.events import SamplingConfig
from engine.runtime.loading import ModelUnavailableError, load_model
from engine.views.replay import read_trace
from tests.conftest import sampler_of
from tests.tui.conftest import notifications, settle, wait_until
from tui.app import make_app
from tui.handlers import Loader
from tui.screens.error import ErrorScreen
from tui.widgets.generation import TokenLines, shown_piece

SIZE = (100, 30)
MASHED_KEYS = 10_000
# every main-screen key that stays on the main screen (i, b, c, w, e, ?, q open something else or quit)
KEYS = {
    "n": "n", "space": " ", "g": "g", "t": "t", "T": "T", "k": "k", "K": "K", "p": "p", "P": "P",
    "m": "m", "M": "M", "s": "s", "S": "S", "left_square_bracket": "[", "right_square_bracket": "]",
    "left_curly_bracket": "{", "right_curly_bracket": "}", "backspace": None, "r": "r",
    "left": None, "right": None, "end": None, **{str(i): str(i) for i in range(1, 10)},
}  # fmt: skip


async def drain(pilot) -> None:
    """Pause any run (queued ones included) until the engine has nothing left to do."""
    app = pilot.app
    while not app.session.engine.idle:
        if app.session.engine.running:
            app.main_screen.action_run_pause()
        await pilot.pause(0.05)
    await settle(pilot)


def send_keys(app, keys: list[str]) -> None:
    """As the terminal driver does: post key events without waiting for the app to handle them."""
    for key in keys:
        app.post_message(events.Key(key, KEYS[key]))


@pytest.mark.anyio
async def test_ten_thousand_random_keys_during_runs_leave_the_trace_equal_to_the_screen(toy, tmp_path):
    trace = tmp_path / "mashed.jsonl"
    config = SamplingConfig(temperature=1.0, seed=0, max_new_tokens=200)
    app = make_app(model=toy, config=config, trace=trace, deterministic=True)
    rng = random.Random(0)
    names = [key for key in KEYS if key != "g"]  # g starts each batch's run instead: no random pause
    runs_seen = 0
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for _ in range(MASHED_KEYS // 50):
            if not app.session.engine.running:  # start a run (it ends at max new tokens or end-of-text) and let it begin
                send_keys(app, ["g"])
                for _ in range(20):
                    await pilot.pause(0.01)
                    if app.session.engine.running:
                        break
            runs_seen += app.session.engine.running
            send_keys(app, [rng.choice(names) for _ in range(50)])
            await pilot.pause(0.005)
        if app.session.engine.running:
            send_keys(app, ["g"])
        await drain(pilot)
        assert app.is_running and not isinstance(app.screen, ErrorScreen)
        assert runs_seen > MASHED_KEYS // 50 // 4  # a run was going on for a good share of the presses
        on_screen = app.main_screen.query_one("#generation #tokens", TokenLines).plain
        generated = [p for p in app.session.transcript.positions if p.generated]  # the window may have slid past older ones
        n_generated = app.session.transcript.n_generated
    recorded = read_trace(trace)
    assert not recorded.truncated and len(recorded.steps) == n_generated > len(generated) // 2 > 0
    newest = recorded.steps[len(recorded.steps) - len(generated) :]
    assert [step.token_id for step in newest] == [p.token_id for p in generated]
    assert on_screen.endswith("".join(shown_piece(step.text) for step in newest))


@pytest.mark.anyio
async def test_resizing_to_20x8_and_back_during_a_run_keeps_generating(toy):
    app = make_app(model=toy, config=SamplingConfig(temperature=1.0, seed=0, max_new_tokens=400), deterministic=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await wait_until(pilot, lambda: app.session.transcript.n_generated >= 2, "the run to start")
        await pilot.resize_terminal(20, 8)
        before = app.session.transcript.n_generated
        await wait_until(pilot, lambda: app.session.transcript.n_generated > before + 2 or sampler_of(app).done, "tokens at 20×8")
        during = app.session.transcript.n_generated
        await pilot.resize_terminal(*SIZE)
        # the run goes on, unless the story ended (end-of-text) meanwhile
        await wait_until(pilot, lambda: app.session.transcript.n_generated > during + 2 or sampler_of(app).done, "more tokens")
        await drain(pilot)
        await pilot.press("r", "n")  # and the engine still steps after it
        await settle(pilot)
        assert app.session.transcript.n_generated == 1 and not isinstance(app.screen, ErrorScreen)
        for pane in app.main_screen.query(".pane"):
            assert pane.region.width >= 20 and pane.region.height >= 8 and pane.region.right <= SIZE[0]


@pytest.mark.anyio
async def test_run_and_step_pressed_while_the_model_loads_say_so_then_work(toy, monkeypatch):
    loading_may_end = threading.Event()

    def slow_load(command, post):
        loading_may_end.wait()  # the load is held here until the keys were pressed
        return toy

    monkeypatch.setattr(Loader, "load", staticmethod(slow_load))
    app = make_app(model="toy", config=SamplingConfig(temperature=0.0), device="cpu", deterministic=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("g", "n")
        assert sampler_of(app) is None
        loading_may_end.set()
        messages = notifications(app)
        assert messages.count("The model is not loaded yet.") == 1  # said once, not once per key
        await settle(pilot)
        assert app.session.transcript.n_generated == 0  # nothing was queued behind the load
        await pilot.press("n")
        await settle(pilot)
        assert app.session.transcript.n_generated == 1


def test_out_of_memory_while_loading_is_one_sentence(monkeypatch):
    def no_room(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(models, "resolve_device", lambda device: "cuda")
    monkeypatch.setattr(GPT2LMHeadModel, "to", no_room)
    with pytest.raises(ModelUnavailableError, match=r"^not enough memory on cuda for 'toy'; use --device cpu"):
        load_model("toy", device="cuda")


@pytest.mark.anyio
async def test_out_of_memory_mid_generation_is_one_sentence_and_the_app_stays(toy, monkeypatch):
    app = make_app(model=toy, config=SamplingConfig(temperature=0.0), deterministic=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)

        def no_room(on_chosen=None):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

        monkeypatch.setattr(sampler_of(app), "step", no_room)
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorScreen), "the error")
        text = " ".join(str(s.content) for s in app.screen.query("Static"))
        assert "ran out of memory" in text and "--device cpu" in text and "Traceback" not in text
        monkeypatch.undo()
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        assert app.session.transcript.n_generated == 1


def test_out_of_memory_mid_generation_in_tfund_generate_is_one_line_and_exit_1(monkeypatch, capsys):
    from engine.cli import main
    from engine.runtime.sampler import Sampler

    def no_room(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")
        yield  # a generator, like Sampler.run

    monkeypatch.setattr(Sampler, "run", no_room)
    assert main(["generate", "--model", "toy", "--device", "cpu", "--max-new-tokens", "4"]) == 1
    stderr = capsys.readouterr().err
    # (in this process transformers was imported before the CLI could turn its loading bar off)
    assert "Traceback" not in stderr and [line for line in stderr.splitlines() if line.startswith("tfund")] == [
        "tfund: error: cpu ran out of memory at this context length; undo or reset to shorten the context, "
        "or restart with --device cpu or a smaller model"
    ]
