"""The model picker (o): lists what `tfund models` lists, opens the choice on the engine thread, keeps the model in
use when the choice fails (one sentence), and lets the old model go once the new one is ready."""

import gc
import weakref
from pathlib import Path

import pytest
from textual.widgets import OptionList

from engine.events import SamplingConfig
from engine.runtime.loading import load_model
from engine.views.models import directory_entry
from tests.conftest import random_llama_dir, sampler_of
from tests.tui.conftest import SIZE, notifications, settle, wait_until
from tui.app import make_app
from tui.screens.models import ModelPicker


@pytest.fixture
def catalog(tmp_path, toy_tokenizer, monkeypatch):
    """The picker lists the toy, a tiny grouped-query Llama and a damaged copy of it (no weights)."""
    llama = random_llama_dir(tmp_path / "llama", toy_tokenizer)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((Path(llama) / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    (broken / "tokenizer.json").write_text((Path(llama) / "tokenizer.json").read_text())
    entries = [directory_entry("toy", "toy", Path(load_model("toy").path)), directory_entry(str(llama), "hf-cache", Path(llama))]
    entries.append(directory_entry(str(broken), "hf-cache", broken))
    monkeypatch.setattr("tui.screens.models.list_models", lambda: entries)
    return str(llama), str(broken)


async def pick(pilot, name: str) -> None:
    app = pilot.app
    await pilot.press("ctrl+o")
    await wait_until(pilot, lambda: isinstance(app.screen, ModelPicker) and app.screen.query_one(OptionList).option_count, "the list")
    options = app.screen.query_one(OptionList)
    options.highlighted = options.get_option_index(name)
    await pilot.press("enter")


@pytest.mark.anyio
async def test_the_picked_model_replaces_the_toy_and_the_toy_is_let_go(catalog):
    llama, _ = catalog
    app = make_app(model="toy", config=SamplingConfig(temperature=0.0), device="cpu", palette="color", deterministic=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        old = weakref.ref(app.session.model)  # the app loaded it by name, as tfund-tui does
        await pilot.press("n")
        await settle(pilot)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, ModelPicker) and app.screen.query_one(OptionList).option_count, "the list")
        options = app.screen.query_one(OptionList)
        assert options.get_option("toy").disabled and "(in use)" in str(options.get_option("toy").prompt)
        await pilot.press("escape")
        await pick(pilot, llama)
        await wait_until(pilot, lambda: app.session.model_info.name == llama, "the new model")
        await settle(pilot)
        session = app.session
        assert session.model_name == llama and session.model_info.n_head == 4 and sampler_of(app).model.name == llama
        assert session.transcript.n_generated == 0  # the prompt again, read by the new model
        assert str(app.main_screen.query_one("#parameters").render()).startswith(f"model {llama[:5]}")  # cut to the pane
        await pilot.press("n")
        await settle(pilot)
        assert session.transcript.n_generated == 1
        gc.collect()
        assert old() is None  # nothing holds the toy any more: its weights are freed


@pytest.mark.anyio
async def test_a_model_that_fails_to_open_leaves_the_one_in_use_and_says_why(catalog, toy):
    _, broken = catalog
    app = make_app(model=toy, config=SamplingConfig(temperature=0.0), device="cpu", palette="color", deterministic=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pick(pilot, broken)
        await wait_until(pilot, lambda: any("Could not open" in n for n in notifications(app)), "the refusal")
        await settle(pilot)
        said = next(n for n in notifications(app) if "Could not open" in n)
        assert said.startswith(f"Could not open {broken}: ") and said.endswith(".") and "\n" not in said
        assert app.session.model is toy and sampler_of(app).model is toy
        assert not app.screen_stack[-1].query("ErrorScreen")
        await pilot.press("n")
        await settle(pilot)
        assert app.session.transcript.n_generated == 1  # the toy goes on


@pytest.mark.anyio
async def test_the_palette_offers_the_picker_and_picking_the_model_in_use_changes_nothing(toy):
    app = make_app(model=toy, device="cpu", palette="color", deterministic=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "Open a model" in [command.title for command in app.get_system_commands(app.screen)]
        assert app.session.switch_model("toy") is False
        await pilot.pause()
        assert "toy is the model in use already." in notifications(app) and app.session.model is toy


def test_quieting_transformers_after_the_picker_listed_the_hub_cache_works():
    """The picker's listing imports huggingface_hub.constants only; loading then quiets the hub's progress bars
    (its package's lazy `utils` attribute raised AttributeError here: every pick failed)."""
    import subprocess
    import sys

    code = "from engine.views.models import list_models; list_models(); from engine.runtime.loading import quiet_transformers; quiet_transformers()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
