"""`tfund-tui --serve [--port N]`: the same app in a web browser, served on localhost by textual-serve.

Every browser tab starts its own `python -m tui` process, which runs tfund-tui with the flags the
server was given. textual-serve starts apps through a shell, so the user's flags (a prompt can hold
any text) travel as JSON in an environment variable, never on the shell's command line.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys

ARGS_ENV = "TFUND_TUI_ARGS"  # the JSON list of flags each served app process runs with
HOST = "localhost"


def app_command() -> str:
    """The shell command textual-serve runs per browser tab: our interpreter, no user text."""
    return f"{shlex.quote(sys.executable)} -m tui"


def without_serve_flags(argv: list[str]) -> list[str]:
    """The flags minus --serve and --port N (the served app itself must not serve)."""
    kept, skip_next = [], False
    for arg in argv:
        if skip_next:
            skip_next = False
        elif arg == "--serve" or arg.startswith("--port="):
            continue
        elif arg == "--port":
            skip_next = True
        else:
            kept.append(arg)
    return kept


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
    return False


def serve(argv: list[str], port: int) -> int:
    """Serve until Ctrl+C, then end the process with 0; return 1 with one sentence when the port is taken."""
    if port_in_use(port):
        print(f"tfund-tui: port {port} on {HOST} is in use; choose another with --port", file=sys.stderr)
        return 1
    from textual_serve.server import Server

    os.environ[ARGS_ENV] = json.dumps(without_serve_flags(argv))
    Server(app_command(), host=HOST, port=port, title="tfund").serve()
    # Ctrl+C stopped the server. Its loop is closed, and the pipes of app processes still open would
    # print "Event loop is closed" tracebacks when Python collects them at exit: leave without that.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def served_args() -> list[str] | None:
    """In a browser tab's process: the flags the server was given; None in any other process."""
    flags = os.environ.get(ARGS_ENV)
    return None if flags is None else json.loads(flags)
