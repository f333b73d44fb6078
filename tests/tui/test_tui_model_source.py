"""The TUI's status line names a GGUF's source and file type, once ready and after each step; the toy's
status stays as it was."""

import pytest

from engine.events import SamplingConfig
from engine.runtime.loading import load_model
from engine.tools.gguf_factory import make_case
from tests.engine.test_ollama import add_model
from tests.tui.conftest import SIZE, settle
from tui.app import make_app


def status(app) -> str:
    return app.main_screen.query_one("#generation-pane").border_subtitle


def deterministic_app(model):
    return make_app(model=model, config=SamplingConfig(temperature=0.0), device="cpu", palette="color", deterministic=True)


@pytest.mark.anyio
async def test_the_status_line_names_an_ollama_models_source_and_file_type(tmp_path, monkeypatch):
    monkeypatch.setenv("TFUND_CACHE", str(tmp_path / "tfund-cache"))
    gguf = make_case("llama", tmp_path, "Q8_0").path
    add_model(tmp_path / "store", "registry.ollama.ai/library/tiny/latest", gguf.read_bytes())
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "store"))
    app = deterministic_app(load_model("ollama:tiny", device="cpu", engine="numpy"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert status(app) == "ready · ollama Q8_0"  # deterministic: no load time
        await pilot.press("n")
        await settle(pilot)
        assert status(app) == "ready · 1 new · ollama Q8_0"


@pytest.mark.anyio
async def test_the_toys_status_line_names_neither(toy):
    app = deterministic_app(toy)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert status(app) == "ready"
        await pilot.press("n")
        await settle(pilot)
        assert status(app) == "ready · 1 new"
