"""End to end: the installed `tfund-tui` script in a real terminal (tmux), as over SSH.

TERM=xterm-256color without COLORTERM is what an SSH session usually gives; a second run sets
NO_COLOR=1. Each run presses keys, reads the screen with capture-pane, checks the trace file and
quits, then checks that the shell got the terminal back and the process exit status.
"""

import json
import os
import shutil
import subprocess
import uuid

import pytest

from engine.views.replay import read_trace
from tests.conftest import wait_until
from tests.support import require

SCREEN_TIMEOUT_S = 120  # model loading on a busy 2-core machine; a guard against hangs, not a timing assertion
EXIT_MARKER = "TFUND-EXIT="


class Terminal:
    """A tmux server of our own (its own socket) running one bash in a 100×30 window."""

    def __init__(self, width: int = 100, height: int = 30):
        self.socket = f"tfund-e2e-{uuid.uuid4().hex[:10]}"
        env = {k: v for k, v in os.environ.items() if k not in ("COLORTERM", "NO_COLOR", "TMUX", "TERM")}
        self.tmux("new-session", "-d", "-s", "e2e", "-x", str(width), "-y", str(height), "bash --norc --noprofile", env=env)

    def tmux(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, env=env, timeout=30)

    def type_line(self, line: str) -> None:
        self.tmux("send-keys", "-t", "e2e", "-l", line)
        self.tmux("send-keys", "-t", "e2e", "Enter")

    def press(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", "e2e", key)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "e2e").stdout

    def wait_for(self, text: str) -> str:
        def screen_with_text() -> str | None:
            screen = self.screen()
            return screen if text in screen else None

        try:
            return wait_until(screen_with_text, f"{text!r} on the screen", SCREEN_TIMEOUT_S, interval=0.1)
        except AssertionError as timeout:
            raise AssertionError(f"{timeout}; the screen:\n{self.screen()}") from None

    def current_command(self) -> str:
        return self.tmux("display-message", "-p", "-t", "e2e", "#{pane_current_command}").stdout.strip()

    def alive(self) -> bool:
        return self.tmux("has-session", "-t", "e2e").returncode == 0

    def close(self) -> None:
        self.tmux("kill-server")


@pytest.fixture
def terminal():
    require(shutil.which("tmux") is not None, "tmux", "apt-get install -y tmux (.ci/run does)")
    term = Terminal()
    yield term
    term.close()


def launch(terminal: Terminal, trace, extra_env: str = "", flags: str = "") -> None:
    script = shutil.which("tfund-tui")
    assert script, "the tfund-tui console script is not installed (pip install -e .)"
    env = f"env -u COLORTERM TERM=xterm-256color {extra_env}"
    terminal.type_line(f"{env} {script} --device cpu --trace {trace} {flags}; echo {EXIT_MARKER}$?")


def quit_and_check_the_terminal_is_back(terminal: Terminal) -> None:
    terminal.press("q")
    screen = terminal.wait_for(f"{EXIT_MARKER}0")
    assert "Parameters" not in screen  # the alternate screen is gone: the shell has its terminal back
    assert terminal.current_command() == "bash"  # tfund-tui is no longer the pane's process
    terminal.type_line("exit")
    wait_until(lambda: not terminal.alive(), "the tmux session to end after the shell exits", timeout=10, interval=0.1)


def test_keys_screen_trace_and_clean_quit_in_a_256_colour_terminal(terminal, tmp_path):
    trace = tmp_path / "trace.jsonl"
    launch(terminal, trace, flags="--temperature 0.5 --seed 3")
    terminal.wait_for("ready")
    for text in ("temperature 0.50", "Parameters", "Generation", "Candidates", "Attention", "Layers"):
        terminal.wait_for(text)  # a capture may catch a frame half-written: wait for each, don't assert on one
    terminal.press("n", "n", "n")
    terminal.wait_for("ready · 3 new")
    terminal.press("t")
    terminal.wait_for("temperature 0.40")
    terminal.press("n")
    screen = terminal.wait_for("ready · 4 new")
    assert "▀" in screen  # colour mode: half-block heatmap
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert "session" in records[0]  # the header names the model and prompt, for replay
    lines = [r for r in records if "session" not in r]
    assert len(lines) == 4
    assert [line["settings"]["temperature"] for line in lines] == [0.5, 0.5, 0.5, 0.4]
    assert all(line["settings"]["seed"] == 3 for line in lines)
    assert [line["position"] for line in lines] == list(range(lines[0]["position"], lines[0]["position"] + 4))
    quit_and_check_the_terminal_is_back(terminal)


def test_no_color_uses_shade_characters_and_quits_cleanly(terminal, tmp_path):
    trace = tmp_path / "trace.jsonl"
    launch(terminal, trace, extra_env="NO_COLOR=1", flags="--temperature 0")
    terminal.wait_for("ready")
    terminal.press("n")
    screen = terminal.wait_for("ready · 1 new")
    assert "▀" not in screen  # no colour to tell two rows in one cell apart
    assert any(shade in screen for shade in "░▒▓█")
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert len(records) == 2 and "session" in records[0] and records[1]["position"] >= 1  # header + 1 token
    quit_and_check_the_terminal_is_back(terminal)


def test_ctrl_c_mid_run_exits_restores_the_terminal_and_leaves_a_whole_trace(terminal, tmp_path):
    trace = tmp_path / "trace.jsonl"
    launch(terminal, trace, flags="--temperature 1 --max-new-tokens 100000")
    terminal.wait_for("ready")
    terminal.press("g")
    terminal.wait_for("running ·")
    terminal.press("C-c")  # mid-run: a token may be half-way through the model
    screen = terminal.wait_for(f"{EXIT_MARKER}0")
    assert "Parameters" not in screen and terminal.current_command() == "bash"
    assert terminal.tmux("display-message", "-p", "-t", "e2e", "#{alternate_on}").stdout.strip() == "0"
    text = trace.read_text()
    assert text.endswith("\n")  # no half-written line
    recorded = read_trace(trace)
    assert not recorded.truncated and len(recorded.steps) >= 1
    assert [step.position for step in recorded.steps] == list(range(recorded.steps[0].position, recorded.steps[-1].position + 1))


def test_ctrl_c_while_the_model_loads_exits_at_once(terminal, tmp_path):
    trace = tmp_path / "trace.jsonl"
    launch(terminal, trace, flags="--engine torch")  # seconds of loading (torch and transformers imported), where the NumPy toy takes 0.1 s
    terminal.wait_for("loading")
    terminal.press("C-c")
    screen = terminal.wait_for(f"{EXIT_MARKER}0")
    assert "Parameters" not in screen and terminal.current_command() == "bash"
