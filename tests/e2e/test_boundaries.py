"""Import boundaries: the engine never pulls in the UI; the UI never pulls in torch at start-up."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # where pyproject.toml holds the contracts


def imported_modules(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_engine_does_not_import_textual_or_tui():
    modules = imported_modules(
        "import engine, engine.cli, engine.runtime.sampler, engine.runtime.loading, engine.model.gpt2, engine.model.blocklab"
    )
    assert "engine.runtime.sampler" in modules
    assert not any(m == "textual" or m.startswith("textual.") for m in modules)
    assert not any(m == "tui" or m.startswith("tui.") for m in modules)


def test_engine_package_import_is_light():
    modules = imported_modules("import engine; from engine import SamplingConfig")
    assert "engine.events" in modules
    assert "torch" not in modules and "transformers" not in modules


def test_tui_app_module_does_not_import_torch():
    modules = imported_modules("import tui.app, tui.__main__")
    assert "tui.app" in modules
    assert "torch" not in modules and "transformers" not in modules


def test_the_architecture_contracts_hold():
    """pyproject.toml's import-linter contracts: engine never imports textual or tui, engine.model never
    imports torch, app code never imports the tools packages, the session, frame pacing and lessons never
    import a screen, no import cycles (lazy imports counted)."""
    run_lint = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    out = subprocess.run([sys.executable, "-c", run_lint], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Contracts: 5 kept, 0 broken." in out.stdout
