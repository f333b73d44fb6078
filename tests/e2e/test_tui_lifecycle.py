"""Quitting never waits for the model to load: the engine thread is a daemon, not a worker the exit joins."""

import subprocess
import sys
import textwrap

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
        assert started.is_set() and pilot.app.main_screen.info is None
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
