"""`tfund-tui --serve`: the app in a browser over textual-serve, on localhost; the flags never pass a shell."""

import asyncio
import signal
import socket
import subprocess
import sys

import aiohttp

from tests.conftest import wait_until_async
from tui.serve import app_command, without_serve_flags

START_TIMEOUT_S = 60  # guards against hangs, not timing assertions


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


async def first_screen(port: int) -> tuple[str, bytes]:
    """The index page, then what the app process sends over the websocket until it is ready."""
    async with aiohttp.ClientSession() as session:

        async def index_page() -> str | None:
            try:
                async with session.get(f"http://localhost:{port}/") as response:
                    return await response.text()
            except aiohttp.ClientConnectionError:
                return None  # not listening yet

        page = await wait_until_async(index_page, "the server to answer", START_TIMEOUT_S, interval=0.1)
        received = b""
        async with session.ws_connect(f"http://localhost:{port}/ws?width=100&height=30") as websocket:
            async with asyncio.timeout(START_TIMEOUT_S):
                async for message in websocket:
                    received += message.data if isinstance(message.data, bytes) else str(message.data).encode()
                    if b"ready" in received:
                        break
        return page, received


def test_the_served_app_runs_in_a_browser_session_with_the_flags_given(tmp_path):
    port = free_port()
    marker = tmp_path / "pwned"
    prompt = f"Once upon a time $(touch {marker}) `touch {marker}`;"
    server = subprocess.Popen(
        [sys.executable, "-m", "tui", "--serve", "--port", str(port), "--prompt", prompt, "--temperature", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        page, screen = asyncio.run(first_screen(port))
    finally:
        server.send_signal(signal.SIGINT)
        _, errors = server.communicate(timeout=30)
    assert "<html" in page.lower() and "tfund" in page
    for text in (b"Parameters", b"Candidates", b"Attention", b"Once", b"ready"):
        assert text in screen
    assert not marker.exists()  # the prompt reached the app as text, never through a shell
    assert server.returncode == 0 and b"Traceback" not in errors


def test_a_port_in_use_is_one_sentence_and_exit_1():
    with socket.socket() as taken:
        taken.bind(("localhost", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "tui", "--serve", "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == f"tfund-tui: port {port} on localhost is in use; choose another with --port"


def test_the_served_command_holds_no_user_text_and_the_flags_lose_only_serve_and_port():
    assert app_command().endswith(" -m tui") and "prompt" not in app_command()
    argv = ["--prompt", "--port 1", "--serve", "--port", "9000", "--temperature=0", "--port=9001"]
    assert without_serve_flags(argv) == ["--prompt", "--port 1", "--temperature=0"]
