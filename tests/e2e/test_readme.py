"""The README's set-up section: what a new user needs before the two commands."""

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def two_commands_section() -> str:
    return README.split("## Two commands", 1)[1].split("\n## ", 1)[0]


def test_the_set_up_says_venv_cpu_torch_and_terminal_size_before_the_commands():
    section = two_commands_section()
    first_command = section.index("pip install -e . && tfund-tui")
    assert section.index("python -m venv .venv && . .venv/bin/activate") < first_command
    assert section.index("pip install torch==2.13.0") < first_command and "CPU-only" in section[:first_command]
    assert re.search(r"80\s*[×x]\s*24", section[:first_command])  # the minimum terminal size


def test_train_toy_in_the_readme_names_its_default_folder():
    assert "./tfund-toy-model" in README and "engine/toy/model" in README
