"""Quitting never waits for the model to load: the engine thread is a daemon, not a worker the exit joins.
A terminal that goes away ends the app: nothing is left running."""

import json
import os
import subprocess
import sys
import textwrap

from tui.tools.bench import PtyApp, terminal_env

QUIT_WHILE_LOADING = textwrap.dedent(
    """
    import threading
    from tui.app import make_app
    from tui.handlers import Loader

    started, never = threading.Event(), threading.Event()

    def load_forever(command, post):  # a load that never finishes
        started.set()
        never.wait()

    Loader.load = staticmethod(load_forever)

    async def quit_while_loading(pilot):
        for _ in range(6000):  # the load has begun (at most 60 s: a guard against hangs)
            if started.is_set():
                break
            await pilot.pause(0.01)
        assert started.is_set() and pilot.app.session.model_info is None
        await pilot.press("q")

    app = make_app(model="toy")
    app.run(headless=True, size=(100, 30), auto_pilot=quit_while_loading)
    print("exited", app.return_code)
    """
)


def test_quitting_while_the_model_loads_exits_at_once():
    # the timeout guards against a hang (the old behaviour: exit joined the loading thread forever)
    result = subprocess.run([sys.executable, "-c", QUIT_WHILE_LOADING], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("exited 0") and "Traceback" not in result.stderr


def test_the_app_exits_when_its_terminal_goes_away_without_a_sighup(tmp_path):
    """The pseudo-terminal closed, no SIGHUP (it is not the app's controlling terminal): Textual alone
    would read end-of-file in a loop at 100% of a core forever."""
    trace = tmp_path / "trace.jsonl"
    command = [sys.executable, "-m", "tui", "--model", "toy", "--temperature", "0", "--trace", str(trace)]
    app = PtyApp(command, (100, 30), env=terminal_env())
    try:
        app.wait_until(lambda: "ready" in app.text()[-4000:], 60, "load the model")
        app.send("n")
        app.wait_until(lambda: trace.exists() and '"id":' in trace.read_text(), 60, "step")
        os.close(app.master)  # the terminal goes away
        assert app.process.wait(timeout=30) == 0  # it quit as q does (the timeout guards against the spin)
    finally:
        if app.process.poll() is None:
            app.process.kill()
            app.process.wait()
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert "session" in records[0] and records[1]["id"] >= 0  # the trace is whole
