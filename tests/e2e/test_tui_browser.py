"""`tfund-tui --serve` in a real browser: headless Chromium (Debian's `chromium`, which .ci/run installs)
driven over the Chrome DevTools Protocol, as a user at a browser tab would: open the page, press keys,
read what the terminal shows.

textual-serve draws the app with xterm.js on a canvas, so the text is read from xterm's buffer: a
script added before the page loads keeps the Terminal that textual.js assigns to `this.terminal`.
"""

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from engine.events import SamplingConfig
from engine.runtime.sampler import Sampler
from tests.support import require

CHROMIUM = shutil.which("chromium")  # Debian installs it on the PATH, as /usr/bin/chromium
WAIT_S = 90  # guards against hangs, not timing assertions
PROMPT = "Once upon a time,"

# Runs in the page before textual.js: the first object given a `terminal` that has a buffer is xterm's.
KEEP_TERMINAL = """
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  set(value) {
    Object.defineProperty(this, "terminal", {value, writable: true, configurable: true, enumerable: true});
    if (value && value.buffer && !window.__tfundTerminal) window.__tfundTerminal = value;
  },
});
"""
# The terminal's visible lines, as text (an empty list until xterm exists).
SCREEN_TEXT = """
(() => {
  const term = window.__tfundTerminal;
  if (!term) return [];
  const buffer = term.buffer.active, lines = [];
  for (let y = 0; y < term.rows; y++) {
    const line = buffer.getLine(buffer.viewportY + y);
    lines.push(line ? line.translateToString(true) : "");
  }
  return lines;
})()
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


class DevTools:
    """A minimal Chrome DevTools Protocol client: one page target, commands answered in order."""

    def __init__(self, websocket: aiohttp.ClientWebSocketResponse):
        self.websocket = websocket
        self.last_id = 0

    async def call(self, method: str, **params) -> dict:
        self.last_id += 1
        await self.websocket.send_json({"id": self.last_id, "method": method, "params": params})
        async for message in self.websocket:  # events (Page.*, Runtime.*) arrive in between: skip them
            if message.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"the DevTools connection closed during {method}")
            reply = json.loads(message.data)
            if reply.get("id") == self.last_id:
                assert "error" not in reply, f"{method}: {reply['error']}"
                return reply["result"]
        raise AssertionError(f"the DevTools connection closed during {method}")

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    async def screen(self) -> str:
        return "\n".join(await self.evaluate(SCREEN_TEXT) or [])

    async def press(self, key: str) -> None:
        """One key as a keyboard sends it: down (with its text), up."""
        code = f"Key{key.upper()}" if key.isalpha() else ""
        common = {"key": key, "code": code, "windowsVirtualKeyCode": ord(key.upper())}
        await self.call("Input.dispatchKeyEvent", type="keyDown", text=key, unmodifiedText=key, **common)
        await self.call("Input.dispatchKeyEvent", type="keyUp", **common)

    async def wait_for_screen(self, condition, what: str) -> str:
        """Poll the screen until `condition(text)` holds; fail naming `what` (and showing the screen) after WAIT_S."""
        deadline = time.monotonic() + WAIT_S
        while True:
            text = await self.screen()
            if condition(text):
                return text
            assert time.monotonic() < deadline, f"never saw {what}; the browser showed:\n{text}"
            await asyncio.sleep(0.1)


async def wait_for_http(session: aiohttp.ClientSession, url: str, what: str, process: subprocess.Popen):
    deadline = time.monotonic() + WAIT_S
    while True:
        assert process.poll() is None, f"{what} exited with {process.returncode}"
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return await response.json(content_type=None) if url.endswith(("/json/version", "/json/list")) else None
        except aiohttp.ClientConnectionError:
            pass
        assert time.monotonic() < deadline, f"{what} did not start"
        await asyncio.sleep(0.1)


def devtools_port_of(profile: Path, browser: subprocess.Popen) -> int:
    """The port Chromium chose (--remote-debugging-port=0): the first line of DevToolsActivePort in its profile."""
    deadline = time.monotonic() + WAIT_S
    active = profile / "DevToolsActivePort"
    while not (active.is_file() and active.read_text().strip()):
        assert browser.poll() is None, f"Chromium exited with {browser.returncode}"
        assert time.monotonic() < deadline, "Chromium never opened its DevTools port"
        time.sleep(0.1)
    return int(active.read_text().split()[0])


async def drive(app_port: int, server: subprocess.Popen, profile: Path, chromium: subprocess.Popen, continued: str) -> tuple[str, str]:
    """Open the app's page, wait for the panes, press n; the screens before and after (with `continued` shown)."""
    async with aiohttp.ClientSession() as session:
        await wait_for_http(session, f"http://localhost:{app_port}/", "tfund-tui --serve", server)
        devtools_port = devtools_port_of(profile, chromium)
        await wait_for_http(session, f"http://127.0.0.1:{devtools_port}/json/version", "Chromium's DevTools endpoint", chromium)
        targets = await wait_for_http(session, f"http://127.0.0.1:{devtools_port}/json/list", "Chromium's page list", chromium)
        page = next(target for target in targets if target["type"] == "page")
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as websocket:
            browser = DevTools(websocket)
            await browser.call("Page.enable")
            await browser.call("Page.addScriptToEvaluateOnNewDocument", source=KEEP_TERMINAL)
            await browser.call("Page.navigate", url=f"http://localhost:{app_port}/")
            before = await browser.wait_for_screen(lambda text: "ready" in text and "Candidates" in text, "the app ready")
            await browser.evaluate("window.__tfundTerminal.focus()")
            await browser.press("n")
            # the status can say "1 new" a frame before the text shows the token: wait for both
            after = await browser.wait_for_screen(
                lambda text: "1 new" in text and continued in text, f"the generated token ({continued!r})"
            )
            return before, after


def test_the_web_view_shows_the_panes_and_steps_a_token_in_headless_chromium(tmp_path, toy):
    require(CHROMIUM is not None, "Chromium", "apt-get install -y chromium (.ci/run does)")
    sampler = Sampler(toy, SamplingConfig(temperature=0.0))
    sampler.set_prompt(PROMPT)
    continued = PROMPT + sampler.step().text  # the prompt and the greedy next token, as the Generation pane must show them
    app_port, profile = free_port(), tmp_path / "chromium-profile"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "tui", "--serve", "--port", str(app_port), "--prompt", PROMPT, "--temperature", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,  # its own process group: the app processes it starts go with it
    )
    browser = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",  # Chromium picks a free port and writes it into the profile
            "--window-size=1400,900",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        before, after = asyncio.run(drive(app_port, server, profile, browser, continued))
    finally:
        os.killpg(browser.pid, signal.SIGKILL)
        browser.wait(timeout=30)
        server.send_signal(signal.SIGINT)
        try:
            _, errors = server.communicate(timeout=30)
        finally:
            try:
                os.killpg(server.pid, signal.SIGKILL)  # any app process the server left behind
            except ProcessLookupError:
                pass
    for pane in ("Parameters", "Candidates", "Attention", "Generation"):
        assert pane in before, before
    assert continued not in before, before
    assert continued in after, after
    assert "Once" in after.split("Attention")[1]  # the attention map labels its rows with the tokens
    assert server.returncode == 0 and b"Traceback" not in errors
