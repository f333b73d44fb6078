"""tfund-tui benchmarks for docs/BENCHMARKS.md: `python -m tui.tools.bench startup|render` (= `tfund bench ...`).

startup  tfund-tui (`python -m tui`, what the tfund-tui script runs) and a minimal Textual app
         (`python -m tui.tools.minimal_app`: one Static and a Footer) launched alternately in the same
         100×30 tmux window (a real terminal emulator; TERM=xterm-256color without COLORTERM, as
         over SSH). The clock starts when tmux respawns the pane with the command; the screen is
         polled every 10 ms until the first frame (pane titles, or the minimal app's text) and, for
         tfund-tui, until the status says "ready" (model loaded). Medians of --repeats launches.
render   per token, at each context length C (a prompt of C - 1 tokens; one step makes C):
         - UI update: in-process (headless Textual, same app and size), the CPU time of the UI
           thread from applying the token's message until Textual is idle again: the panes
           redrawn, the layout and the repaint composed and encoded as terminal sequences (the
           headless driver writes nothing, so its display step is replaced by that encoding);
           the engine's own time for the token beside it, and the size of that repaint's terminal
           sequences ("bytes/update": deterministic, one frame);
         - bytes written to the terminal: the real app in a pseudo-terminal (os.openpty, 100×30,
           TERM=xterm-256color, 256 colours), every byte it writes read back. One token = one `n`
           key; its bytes are counted from the key until the trace holds the token and the output
           has been quiet for 0.3 s; backspace (undo, not counted, waited for in the same way)
           goes back to C - 1. This is step mode, one frame per token, the worst case: run mode
           coalesces tokens into at most 30 frames a second.
         --config gpt2... measures a random-init model of that shape (12 layers × 12 heads for
         gpt2): its vocabulary is cut to the toy tokenizer's, which labels the tokens, and it is
         saved to a temporary directory that both measurements load.
Figures depend on the machine: printed, never asserted. Models load on the CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import io
import json
import os
import re
import select
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import uuid
from pathlib import Path

from rich.console import Console

from engine.args import OneLineParser, integer, model_arg, ranged
from engine.events import SamplingConfig
from tui.tools.minimal_app import READY_TEXT
from tui.widgets.generation import shown_piece

POLL_S = 0.01  # tmux screen polling interval
QUIET_S = 0.3  # output silence that ends one token's frame in the pseudo-terminal
LAUNCH_TIMEOUT_S = 180.0
STEP_TIMEOUT_S = 60.0
RANDOM_CONFIGS = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
UI_BUDGET_MS = 16.0  # issue 5: per-token UI update at 128 tokens of context, 100×30
STARTUP_GOAL_S = 1.0  # issue 5: first frame
STARTUP_GOAL_RATIO = 2.0  # issue 5: first frame at most twice the minimal app's
ANSI_ESCAPE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|[0-?@-_])")  # CSI, OSC, DCS.., 2-byte

repeats_arg = ranged(integer, lambda v: 1 <= v <= 1000, "an integer in [1, 1000]")
tokens_arg = ranged(integer, lambda v: 1 <= v <= 10_000, "an integer in [1, 10000]")


def contexts_arg(text: str) -> list[int]:
    """`32,128,256` -> [32, 128, 256]; each at least 2 (a prompt token and a generated one)."""
    try:
        contexts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers >= 2, e.g. 32,128,256 (got {text!r})") from None
    if not contexts or min(contexts) < 2:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers >= 2, e.g. 32,128,256 (got {text!r})")
    return contexts


def size_arg(text: str) -> tuple[int, int]:
    """`100x30` -> (100, 30)."""
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match or not (40 <= int(match[1]) <= 500 and 10 <= int(match[2]) <= 200):
        raise argparse.ArgumentTypeError(f"must be WIDTHxHEIGHT within 40x10..500x200, e.g. 100x30 (got {text!r})")
    return int(match[1]), int(match[2])


def strip_ansi(text: str) -> str:
    """The printable text of terminal output: escape sequences removed."""
    return ANSI_ESCAPE.sub("", text)


def usage_exit(message: str) -> None:
    """A bad argument found after parsing: one line, exit 2."""
    sys.stderr.write(f"tfund bench: error: {message}\n")
    raise SystemExit(2)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


# ---- startup: tmux ---------------------------------------------------------------------------
def tmux_launch_times(command: list[str], first_marker: str, ready_marker: str | None, size=(100, 30)) -> tuple[float, float | None]:
    """Seconds from launch to the first frame (first_marker on screen) and to ready_marker, in tmux."""
    if shutil.which("tmux") is None:
        raise SystemExit("tui.tools.bench: tmux is not installed (the start-up benchmark runs the apps in tmux)")
    tmux = ["tmux", "-L", f"tfund-bench-{uuid.uuid4().hex[:8]}"]
    shell = f"env -u COLORTERM -u NO_COLOR TERM=xterm-256color {shlex.join(command)}"
    width, height = size
    # the server and pane exist before the clock starts: only the app's own start-up is timed
    subprocess.run([*tmux, "new-session", "-d", "-x", str(width), "-y", str(height), "cat"], check=True)
    first_frame = ready = None
    try:
        started = time.perf_counter()
        subprocess.run([*tmux, "respawn-pane", "-k", shell], check=True)
        while time.perf_counter() - started < LAUNCH_TIMEOUT_S:
            screen = subprocess.run([*tmux, "capture-pane", "-p"], capture_output=True, text=True).stdout
            now = time.perf_counter() - started
            if first_frame is None and first_marker in screen:
                first_frame = now
            if ready_marker is not None and ready_marker in screen:
                ready = now
            if first_frame is not None and (ready_marker is None or ready is not None):
                break
            time.sleep(POLL_S)
        subprocess.run([*tmux, "send-keys", "q"], capture_output=True)
        time.sleep(0.3)
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
    if first_frame is None or (ready_marker is not None and ready is None):
        raise SystemExit(
            f"tui.tools.bench: {shlex.join(command)} did not show {ready_marker or first_marker!r} within {LAUNCH_TIMEOUT_S:.0f} s"
        )
    return first_frame, ready


def startup_bench(model: str, repeats: int, engine: str | None = None) -> dict:
    """tfund-tui vs the minimal app, launched alternately; medians in ms and the first-frame ratio."""
    tfund = [sys.executable, "-m", "tui", "--model", model, "--device", "cpu", *engine_flags(engine)]
    minimal = [sys.executable, "-m", "tui.tools.minimal_app"]
    runs: dict[str, list] = {"tfund_first_frame_ms": [], "tfund_model_ready_ms": [], "minimal_first_frame_ms": []}
    for _ in range(repeats):
        first, ready = tmux_launch_times(tfund, "Parameters", "ready")
        runs["tfund_first_frame_ms"].append(first * 1e3)
        runs["tfund_model_ready_ms"].append(ready * 1e3)
        runs["minimal_first_frame_ms"].append(tmux_launch_times(minimal, READY_TEXT, None)[0] * 1e3)
    result = {"model": model, "repeats": repeats, "terminal": "tmux 100x30", **{k: median(v) for k, v in runs.items()}}
    result["ratio_first_frame"] = result["tfund_first_frame_ms"] / result["minimal_first_frame_ms"]
    result["runs"] = runs
    return result


def format_startup(result: dict) -> str:
    first, ratio = result["tfund_first_frame_ms"], result["ratio_first_frame"]
    return "\n".join(
        [
            f"startup benchmark: {result['terminal']}, median of {result['repeats']} launches each, alternating",
            f"{'app':<34}{'first frame':>12}{'model ready':>13}",
            f"{'minimal Textual app':<34}{result['minimal_first_frame_ms']:>9.0f} ms{'-':>13}",
            f"{'tfund-tui --model ' + result['model']:<34}{first:>9.0f} ms{result['tfund_model_ready_ms']:>10.0f} ms",
            f"ratio first frame tfund-tui / minimal: {ratio:.2f}x "
            f"(goal <= {STARTUP_GOAL_RATIO:.0f}x: {verdict(ratio <= STARTUP_GOAL_RATIO)}; "
            f"first frame <= {STARTUP_GOAL_S * 1e3:.0f} ms: {verdict(first <= STARTUP_GOAL_S * 1e3)})",
        ]
    )


# ---- render: the model and prompts -------------------------------------------------------------
def prompt_of_length(tokenizer, n_tokens: int) -> str:
    """A toy-corpus text that the tokenizer splits into exactly n_tokens tokens."""
    from engine.toy.corpus import END_OF_TEXT, corpus_text

    n_stories = 1
    while True:
        ids = tokenizer.encode(corpus_text(n_stories, seed=0).replace(END_OF_TEXT, "\n"), add_special_tokens=False)
        if len(ids) >= n_tokens + 8 or n_stories > 4096:
            break
        n_stories *= 2
    for cut in [n_tokens + k for k in range(8)] + [n_tokens - k for k in range(1, 8)]:
        text = tokenizer.decode(ids[:cut])
        if 0 < cut <= len(ids) and len(tokenizer.encode(text, add_special_tokens=False)) == n_tokens:
            return text
    raise ValueError(f"could not build a prompt of exactly {n_tokens} tokens")


def save_random_model(config_name: str, directory: str) -> str:
    """A random-init GPT-2 of this shape with the toy tokenizer (vocabulary cut to fit), saved for load_model."""
    from engine.tools.factories import random_gpt2
    from engine.views.tokenization import load_tokenizer

    tokenizer = load_tokenizer("toy")
    hf_model = random_gpt2(config_name, vocab_size=len(tokenizer))
    tokenizer.model_max_length = hf_model.config.n_positions
    hf_model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


# ---- render: UI time in-process ----------------------------------------------------------------
async def ui_update_times(model: str, prompts: dict[int, str], n_tokens: int, size: tuple[int, int]) -> dict:
    """Per context (prompt of context - 1 tokens): median UI CPU ms per token, engine ms, bytes the updates encode to."""
    from engine.runtime.loading import load_model
    from tui.app import make_app
    from tui.messages import ContextReady, TokensGenerated, TokenUndone

    loaded = load_model(model, device="cpu")
    if max(prompts) > loaded.info.n_positions:
        usage_exit(f"argument --contexts: at most the model's {loaded.info.n_positions} positions (got {max(prompts)})")
    app = make_app(model=loaded, config=SamplingConfig(temperature=0.8, seed=0), device="cpu", palette="color")
    terminal = Console(color_system="256", force_terminal=True, file=io.StringIO())  # as the pseudo-terminal's
    encoded: list[int] = []

    def encode_display(screen, update) -> None:  # what a terminal driver would be sent for this update
        if update is not None:
            encoded.append(len(update.render_segments(terminal).encode()))

    results = {}
    async with app.run_test(size=size) as pilot:
        app._display = encode_display  # the headless driver's display writes nothing
        main, session = app.main_screen, app.session
        while session.model_info is None or not session.engine.idle:
            await pilot.pause(0.05)
        sampler = session.engine.handler.sampler  # driven here on the UI thread: the engine thread is idle
        for context, prompt in prompts.items():
            sampler.set_prompt(prompt)
            main.on_context_ready(ContextReady.of_sampler(sampler))
            main.redraw()
            await pilot.pause()
            ui_ms, engine_ms, update_bytes = [], [], []
            for _ in range(n_tokens):
                event = sampler.step()
                message = TokensGenerated([event], sampler.preview(), sampler.config, None)
                encoded.clear()
                began = time.thread_time()
                main.on_tokens_generated(message)
                main.redraw()
                await pilot.pause()  # Textual's own layout and repaint of what changed
                ui_ms.append((time.thread_time() - began) * 1e3)
                engine_ms.append(event.timings["total"])
                update_bytes.append(sum(encoded))
                sampler.undo()  # back to context - 1, shown as the app shows an undo (not timed)
                main.on_token_undone(
                    TokenUndone(sampler.last_lens, sampler.last_norms, sampler.last_cosines, sampler.preview(), sampler.config)
                )
                main.redraw()
                await pilot.pause()
            results[context] = {
                "ui_ms": median(ui_ms),
                "engine_ms": median(engine_ms),
                "encoded_bytes": median(update_bytes),
                "ui_ms_runs": ui_ms,
            }
        info = session.model_info
    return {"n_layer": info.n_layer, "n_head": info.n_head, "n_positions": info.n_positions, "contexts": results}


# ---- render: bytes in a pseudo-terminal --------------------------------------------------------
SYNC_QUERY = b"\x1b[?2026$p"  # "do you support synchronized output?" (DECRQM), which Textual asks at start-up
SYNC_REPLY = b"\x1b[?2026;2$y"  # "yes, and it is off" (DECRPM), as kitty, WezTerm, foot, iTerm2 or tmux 3.4 answer
SYNC_END = b"\x1b[?2026l"  # the end of one frame: Textual then wraps each frame in ?2026h … ?2026l


class PtyApp:
    """A command running in a pseudo-terminal of a given size; everything it writes is read and counted.

    It answers the synchronized-output query as most modern terminals do, so each frame the app writes
    is delimited and `frames` holds (when its last byte arrived, its start and end in `output`).
    """

    def __init__(self, command: list[str], size: tuple[int, int], env: dict[str, str] | None = None):
        master, slave = os.openpty()
        width, height = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
        self.master = master
        self.output = bytearray()
        self.frames: list[tuple[float, int, int]] = []
        self.last_output_at = time.monotonic()
        self.lock = threading.Lock()
        self.process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True, close_fds=True)
        os.close(slave)
        self.reader = threading.Thread(target=self.read_all, daemon=True)
        self.reader.start()

    def read_all(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.master], [], [], 0.5)
                if not ready:
                    if self.process.poll() is not None:
                        return
                    continue
                chunk = os.read(self.master, 65536)
            except OSError:  # the child closed the terminal
                return
            if not chunk:
                return
            with self.lock:
                if self.add_output(chunk, time.monotonic()):
                    os.write(self.master, SYNC_REPLY)

    def add_output(self, chunk: bytes, arrived: float) -> bool:  # call with the lock held
        """Keep what the app wrote and the frames it ended; True when it asked the synchronized-output query."""
        before = len(self.output)
        self.output += chunk
        self.last_output_at = arrived
        end = self.output.find(SYNC_END, max(0, before - (len(SYNC_END) - 1)))  # one split across reads too
        while end != -1:
            start = self.frames[-1][2] if self.frames else 0
            self.frames.append((arrived, start, end + len(SYNC_END)))
            end = self.output.find(SYNC_END, end + len(SYNC_END))
        return SYNC_QUERY in self.output[max(0, before - (len(SYNC_QUERY) - 1)) :]

    def frames_after(self, moment: float) -> list[tuple[float, str]]:
        """(arrival, printable text) of each frame that arrived after `moment` (time.monotonic)."""
        with self.lock:
            return [(at, strip_ansi(self.output[a:b].decode("utf-8", errors="replace"))) for at, a, b in self.frames if at > moment]

    @property
    def n_bytes(self) -> int:
        with self.lock:
            return len(self.output)

    def text(self) -> str:
        with self.lock:
            return strip_ansi(self.output.decode("utf-8", errors="replace"))

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait_until(self, condition, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit(f"tui.tools.bench: the app in the pseudo-terminal did not {what} within {timeout_s:.0f} s")
            time.sleep(0.01)

    def wait_quiet(self, quiet_s: float, timeout_s: float) -> None:
        self.wait_until(lambda: time.monotonic() - self.last_output_at >= quiet_s, timeout_s, "go quiet")

    def close(self) -> None:
        if self.process.poll() is None:
            self.send("q")
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.reader.join(2)
        os.close(self.master)


def terminal_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLORTERM", "NO_COLOR", "TEXTUAL")}
    env["TERM"] = "xterm-256color"
    return env


def trace_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def pty_bytes_per_token(model: str, prompt: str, n_tokens: int, size: tuple[int, int], workdir: str) -> list[int]:
    """Bytes the real app writes to its terminal for each of n_tokens steps (each undone before the next)."""
    trace = Path(workdir) / f"trace-{uuid.uuid4().hex[:8]}.jsonl"
    command = [
        sys.executable,
        "-m",
        "tui",
        "--model",
        model,
        "--device",
        "cpu",
        "--prompt",
        prompt,
        "--temperature",
        "0.8",
        "--seed",
        "0",
        "--trace",
        str(trace),
    ]
    app = PtyApp(command, size, terminal_env())
    counts = []
    try:
        app.wait_until(lambda: "ready" in app.text(), LAUNCH_TIMEOUT_S, "become ready")
        app.wait_quiet(QUIET_S * 2, STEP_TIMEOUT_S)
        for _ in range(n_tokens):
            lines, before = trace_lines(trace), app.n_bytes
            app.send("n")
            app.wait_until(lambda lines=lines, before=before: trace_lines(trace) > lines and app.n_bytes > before, STEP_TIMEOUT_S, "step")
            app.wait_quiet(QUIET_S, STEP_TIMEOUT_S)
            counts.append(app.n_bytes - before)
            lines, before = trace_lines(trace), app.n_bytes
            app.send("\x7f")  # backspace: undo; its repaint must be over before the next step counts
            app.wait_until(lambda lines=lines, before=before: trace_lines(trace) > lines and app.n_bytes > before, STEP_TIMEOUT_S, "undo")
            app.wait_quiet(QUIET_S, STEP_TIMEOUT_S)
    finally:
        app.close()
    return counts


def render_bench(
    model: str | None, config: str | None, contexts: list[int], n_tokens: int, n_byte_tokens: int, size: tuple[int, int]
) -> dict:
    """UI ms per token (in-process) and bytes per token (pseudo-terminal) at each context length."""
    from engine.views.tokenization import load_tokenizer

    with tempfile.TemporaryDirectory(prefix="tfund-bench-") as workdir:
        model_path = save_random_model(config, str(Path(workdir) / config)) if config else model or "toy"
        tokenizer = load_tokenizer(model_path)
        prompts = {context: prompt_of_length(tokenizer, context - 1) for context in contexts}
        timed = asyncio.run(ui_update_times(model_path, prompts, n_tokens, size))
        for context, prompt in prompts.items():
            counts = pty_bytes_per_token(model_path, prompt, n_byte_tokens, size, workdir)
            timed["contexts"][context].update(bytes=median(counts), bytes_runs=counts)
    label = f"random {config}" if config else model or "toy"
    return {"model": label, "size": f"{size[0]}x{size[1]}", "tokens": n_tokens, "byte_tokens": n_byte_tokens, **timed}


def format_render(result: dict) -> str:
    lines = [
        f"render benchmark: {result['model']} ({result['n_layer']} layers x {result['n_head']} heads), "
        f"{result['size']}, step mode; UI: median of {result['tokens']} tokens, bytes: median of {result['byte_tokens']}",
        f"{'context':>8}{'UI ms/token':>13}{'engine ms/token':>17}{'terminal bytes/token':>22}{'bytes/update':>14}",
    ]
    for context, row in result["contexts"].items():
        lines.append(f"{context:>8}{row['ui_ms']:>13.1f}{row['engine_ms']:>17.1f}{row['bytes']:>22,.0f}{row['encoded_bytes']:>14,.0f}")
    lines.append("terminal bytes: the real app in a pseudo-terminal; bytes/update: the token's own repaint, in-process")
    at_128 = result["contexts"].get(128) or result["contexts"].get("128")
    if at_128 is not None:
        met = verdict(at_128["ui_ms"] <= UI_BUDGET_MS)
        lines.append(f"budget: UI update <= {UI_BUDGET_MS:.0f} ms/token at 128 tokens: {met} ({at_128['ui_ms']:.1f} ms)")
    return "\n".join(lines)


# ---- tui: instant start, no collapse, run mode vs headless, key to screen ------------------------
BUSY_S = 60.0  # a background busy process stops by itself after this long
READY_GOAL_S = 1.0  # issue 14: model ready on the toy
READY_GOAL_RATIO = 4.0  # issue 14: model ready <= 4x a minimal Textual app's first frame
LOAD_GOAL_RATIO = 0.3  # issue 14: torch tok/s under two busy processes >= 0.3x quiet
RUN_GOAL_RATIO = 0.6  # issue 14: TUI run mode >= 0.6x headless tok/s
KEY_GOAL_MS = 10.0  # issue 14: p50 from `n` to the repainted token (the end of the first frame showing it)
KEY_QUIET_S = 0.15  # output silence that ends one key's repaint
RUN_REPEATS = 7  # at least this many run-mode pairs: a toy run ends at end-of-text in ~0.3 s, and one pair is noise


def engine_flags(engine: str | None) -> list[str]:
    return [] if engine is None else ["--engine", engine]


def headless_tokens_per_second(model: str, engine: str | None, n_tokens: int, seed: int) -> dict:
    """`tfund generate --json` in a subprocess: its own tokens_per_second, engine and threads."""
    command = [sys.executable, "-m", "engine.cli", "generate", "--model", model, *engine_flags(engine), "--json"]
    command += ["--max-new-tokens", str(n_tokens), "--temperature", "0.8", "--seed", str(seed), "--device", "cpu"]
    out = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    return {
        "tokens_per_second": out["tokens_per_second"],
        "tokens": len(out["tokens"]),
        "threads": out.get("threads"),
        "engine": out["engine"],
    }


def busy_processes(n: int) -> list[subprocess.Popen]:
    """n processes spinning on a core each; each stops by itself after BUSY_S."""
    spin = f"import time\nend = time.monotonic() + {BUSY_S}\nwhile time.monotonic() < end: pass"
    return [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(n)]


def under_load_bench(model: str, n_tokens: int, repeats: int) -> dict:
    """torch (and the default engine) headless tok/s quiet and with 2 busy processes, alternating."""
    runs: dict[str, list[float]] = {"torch_quiet": [], "torch_loaded": [], "default_quiet": [], "default_loaded": []}
    threads = None
    for repeat in range(repeats):
        for engine, name in (("torch", "torch"), (None, "default")):
            runs[f"{name}_quiet"].append(headless_tokens_per_second(model, engine, n_tokens, repeat)["tokens_per_second"])
            busy = busy_processes(2)
            try:
                time.sleep(0.2)  # the busy processes are running
                out = headless_tokens_per_second(model, engine, n_tokens, repeat)
            finally:
                for process in busy:
                    process.kill()
                    process.wait()
            runs[f"{name}_loaded"].append(out["tokens_per_second"])
            threads = out["threads"] if engine == "torch" else threads
    result = {name: median(values) for name, values in runs.items()}
    result["torch_threads"] = threads
    result["torch_ratio"] = result["torch_loaded"] / result["torch_quiet"]
    result["default_ratio"] = result["default_loaded"] / result["default_quiet"]
    return result


def tui_command(model: str, engine: str | None, trace: Path, *flags: str) -> list[str]:
    return [sys.executable, "-m", "tui", "--model", model, "--device", "cpu", *engine_flags(engine), "--trace", str(trace), *flags]


def token_lines(path: Path) -> int:
    """Token events in a trace (lines with an "id"); the session header and undos are not counted."""
    return sum('"id":' in line for line in path.read_text().splitlines()) if path.exists() else 0


def timed_run(app: PtyApp, trace: Path) -> float:
    """Press g and wait for the run to end (a second without tokens); its tok/s counted from its first
    token, as `tfund generate` counts from its first step (the key's own latency is the key figure)."""
    app.send("g")
    count, first, changed = token_lines(trace), None, time.perf_counter()
    while time.perf_counter() - changed < (1.0 if first else STEP_TIMEOUT_S):  # a large model's first token may take seconds
        now_count = token_lines(trace)
        if now_count != count:
            count, changed = now_count, time.perf_counter()
            first = first or (changed, count)
        time.sleep(0.002)
    if first is None:
        raise SystemExit("tui.tools.bench: the run in the pseudo-terminal produced no tokens")
    return (count - first[1]) / max(changed - first[0], 1e-9)


def run_mode_bench(model: str, engine: str | None, n_tokens: int, repeats: int, size: tuple[int, int], workdir: str) -> dict:
    """tok/s of `g` in the real app (a pseudo-terminal) and of headless `tfund generate`, alternately, on the
    same seed: one app, reset (r) between its runs, so each run makes the same tokens as the headless one."""
    trace = Path(workdir) / f"run-{uuid.uuid4().hex[:8]}.jsonl"
    flags = ["--max-new-tokens", str(n_tokens), "--temperature", "0.8", "--seed", "0"]
    app = PtyApp(tui_command(model, engine, trace, *flags), size, env=terminal_env())
    tui, headless = [], []
    try:
        app.wait_until(lambda: "ready" in app.text()[-4000:], LAUNCH_TIMEOUT_S, "load the model")
        app.wait_quiet(QUIET_S, STEP_TIMEOUT_S)
        for _ in range(repeats):
            headless.append(headless_tokens_per_second(model, engine, n_tokens, 0)["tokens_per_second"])
            tui.append(timed_run(app, trace))
            app.send("r")  # back to the prompt, the generator re-seeded
            app.wait_quiet(QUIET_S, STEP_TIMEOUT_S)
    finally:
        app.close()
    return {"tui_runs": tui, "headless_runs": headless}


def last_token_text(path: Path) -> str:
    """The newest token's text in a trace."""
    return next(json.loads(line)["text"] for line in reversed(path.read_text().splitlines()) if '"id":' in line)


def key_latencies(model: str, engine: str | None, n_keys: int, size: tuple[int, int], workdir: str) -> dict[str, list[float]]:
    """ms from an `n` key to the end of the first frame showing the new token ("token"), and to the last
    byte of everything the key repainted ("repaint", output quiet after it); each step undone after."""
    trace = Path(workdir) / f"keys-{uuid.uuid4().hex[:8]}.jsonl"
    app = PtyApp(tui_command(model, engine, trace, "--temperature", "0"), size, env=terminal_env())
    latencies: dict[str, list[float]] = {"token": [], "repaint": []}
    try:
        app.wait_until(lambda: "ready" in app.text()[-4000:], LAUNCH_TIMEOUT_S, "load the model")
        app.wait_quiet(QUIET_S, STEP_TIMEOUT_S)
        if not app.frames:
            raise SystemExit("tui.tools.bench: the app did not delimit its frames (synchronized output) in the pseudo-terminal")
        for _ in range(n_keys):
            before = token_lines(trace)
            sent = time.monotonic()
            app.send("n")
            app.wait_until(lambda b=before, s=sent: token_lines(trace) > b and app.last_output_at > s, STEP_TIMEOUT_S, "show the token")
            app.wait_quiet(KEY_QUIET_S, STEP_TIMEOUT_S)
            word = shown_piece(last_token_text(trace)).strip()  # as the pane draws it; "" (a space): the first frame
            shown = next((at for at, text in app.frames_after(sent) if text.strip() and word in text), None)
            if shown is None:
                raise SystemExit(f"tui.tools.bench: no frame after the key showed its token {word!r}")
            latencies["token"].append((shown - sent) * 1e3)
            latencies["repaint"].append((app.last_output_at - sent) * 1e3)
            undone = time.monotonic()
            app.send("\x7f")  # backspace: undo, back to the prompt; its repaint must be over before the next key
            app.wait_until(lambda u=undone: app.last_output_at > u, STEP_TIMEOUT_S, "show the undo")
            app.wait_quiet(KEY_QUIET_S, STEP_TIMEOUT_S)
    finally:
        app.close()
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def tui_bench(model: str, engine: str | None, repeats: int, n_tokens: int, n_keys: int, size: tuple[int, int]) -> dict:
    """Issue 14's figures, each pair measured back to back in this one run."""
    startup = startup_bench(model, repeats, engine)
    load = under_load_bench(model, n_tokens, repeats)
    with tempfile.TemporaryDirectory() as workdir:
        runs = run_mode_bench(model, engine, n_tokens, max(RUN_REPEATS, repeats), size, workdir)
        keys = key_latencies(model, engine, n_keys, size, workdir)
    run, headless = runs["tui_runs"], runs["headless_runs"]
    return {
        "model": model,
        "engine": engine or "default",
        "repeats": repeats,
        "startup": {k: v for k, v in startup.items() if k != "runs"},
        "under_load": load,
        "run_mode": run_mode_summary(run, headless),
        "key_to_screen_ms": key_summary(keys),
    }


def key_summary(keys: dict) -> dict:
    """Key to screen: the first frame with the token and the whole repaint, p50 and p95 in ms."""
    token, repaint = keys["token"], keys["repaint"]
    return {
        "p50": percentile(token, 0.5),
        "p95": percentile(token, 0.95),
        "repaint_p50": percentile(repaint, 0.5),
        "repaint_p95": percentile(repaint, 0.95),
        "n": len(token),
    }


def run_mode_summary(tui: list[float], headless: list[float]) -> dict:
    """Run mode's tokens a second in the app against headless generation, medians of the runs, and their ratio."""
    return {
        "tui_tokens_per_second": median(tui),
        "headless_tokens_per_second": median(headless),
        "ratio": median(tui) / median(headless),
        "n": len(tui),
    }


def format_tui(result: dict) -> str:
    s, load, run, keys = result["startup"], result["under_load"], result["run_mode"], result["key_to_screen_ms"]
    ready = s["tfund_model_ready_ms"]
    ready_ratio = ready / s["minimal_first_frame_ms"]
    return "\n".join(
        [
            f"tui benchmark: --model {result['model']}, engine {result['engine']}, medians of {result['repeats']} (CPU)",
            f"model ready        {ready:7.0f} ms  minimal app first frame {s['minimal_first_frame_ms']:.0f} ms  ratio {ready_ratio:.2f}x "
            f"(goal <= {READY_GOAL_S * 1e3:.0f} ms: {verdict(ready <= READY_GOAL_S * 1e3)}; <= {READY_GOAL_RATIO:.0f}x: "
            f"{verdict(ready_ratio <= READY_GOAL_RATIO)})",
            f"torch ({load['torch_threads']} thread(s))  {load['torch_quiet']:7.0f} tok/s quiet  {load['torch_loaded']:7.0f} with 2 busy "
            f"processes  ratio {load['torch_ratio']:.2f} (goal >= {LOAD_GOAL_RATIO}: {verdict(load['torch_ratio'] >= LOAD_GOAL_RATIO)})",
            f"default engine     {load['default_quiet']:7.0f} tok/s quiet  {load['default_loaded']:7.0f} with 2 busy processes  "
            f"ratio {load['default_ratio']:.2f}",
            f"run mode (g)       {run['tui_tokens_per_second']:7.0f} tok/s in the TUI  {run['headless_tokens_per_second']:7.0f} headless  "
            f"ratio {run['ratio']:.2f} (goal >= {RUN_GOAL_RATIO}: {verdict(run['ratio'] >= RUN_GOAL_RATIO)}; medians of {run['n']} runs each)",
            f"key n to screen    p50 {keys['p50']:.1f} ms  p95 {keys['p95']:.1f} ms  ({keys['n']} keys; goal p50 <= {KEY_GOAL_MS:.0f} ms: "
            f"{verdict(keys['p50'] <= KEY_GOAL_MS)}); the whole repaint p50 {keys['repaint_p50']:.1f} ms  p95 {keys['repaint_p95']:.1f} ms",
        ]
    )


# ---- a real model (issue 26): the same figures at SmolLM2's size, plus all heads and memory ------------
HEADS_CONTEXT = 256  # tokens of context whose every layer x head the all-heads screen measures
RSS_TOKENS = 1024  # tokens generated before the app's memory is read


def rss_mib(pid: int) -> dict[str, float]:
    """The process's resident memory now and at its peak (/proc: Linux), in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {name: int(fields[key].split()[0]) / 1024 for name, key in (("rss", "VmRSS"), ("peak", "VmHWM"))}


def all_heads_ms(model: str, engine: str, n_tokens: int, repeats: int) -> dict:
    """The all-heads screen's statistics (tui.screens.heads.context_head_stats) over a context of n_tokens."""
    from engine.runtime.loading import load_model
    from engine.runtime.sampler import Sampler
    from tui.screens.heads import context_head_stats

    loaded = load_model(model, device="cpu", engine=engine)
    sampler = Sampler(loaded, SamplingConfig(temperature=0.0))
    sampler.set_prompt(prompt_of_length(loaded.tokenizer, n_tokens))
    rows, ids = [view.attention for view in sampler.views], list(sampler.tokens)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        context_head_stats(rows, ids)
        times.append((time.perf_counter() - started) * 1e3)
    return {"ms": median(times), "tokens": len(ids), "heads": loaded.info.n_layer * loaded.info.n_head, "repeats": repeats}


def rss_after_tokens(model: str, engine: str, n_tokens: int, size: tuple[int, int], workdir: str) -> dict:
    """The app's resident memory once ready and after n_tokens generated with g (an end-of-text is undone and
    the second candidate forced, so the run goes on)."""
    trace = Path(workdir) / f"rss-{uuid.uuid4().hex[:8]}.jsonl"
    flags = ["--max-new-tokens", str(n_tokens), "--temperature", "0.8", "--seed", "0"]
    app = PtyApp(tui_command(model, engine, trace, *flags), size, env=terminal_env())
    try:
        app.wait_until(lambda: "ready" in app.text()[-4000:], LAUNCH_TIMEOUT_S, "load the model")
        app.wait_quiet(QUIET_S, STEP_TIMEOUT_S)
        ready = rss_mib(app.process.pid)
        while token_lines(trace) < n_tokens:
            app.send("g")
            count, changed = token_lines(trace), time.perf_counter()
            while count < n_tokens and time.perf_counter() - changed < STEP_TIMEOUT_S / 10:
                time.sleep(0.01)
                if (now := token_lines(trace)) != count:
                    count, changed = now, time.perf_counter()
            if count >= n_tokens:
                app.send("g")  # pause there
                break
            app.send("\x7f")  # the run ended early (end-of-text): undo it, take the second candidate, and go on
            app.send("2")
            app.wait_until(lambda c=count: token_lines(trace) > c, STEP_TIMEOUT_S, "take the second candidate")
        app.wait_quiet(1.0, STEP_TIMEOUT_S)
        after = rss_mib(app.process.pid)
    finally:
        app.close()
    return {"ready_mib": ready["rss"], "after_mib": after["rss"], "peak_mib": after["peak"], "tokens": token_lines(trace)}


def model_bench(model: str, engine: str, n_keys: int, runs: int, n_tokens: int, size: tuple[int, int]) -> dict:
    """Key to screen, run mode vs headless, all-heads statistics and memory on `model`, in this one run."""
    with tempfile.TemporaryDirectory() as workdir:
        keys = key_latencies(model, engine, n_keys, size, workdir)
        mode = run_mode_bench(model, engine, n_tokens, runs, size, workdir)
        memory = rss_after_tokens(model, engine, RSS_TOKENS, size, workdir)
    heads = all_heads_ms(model, engine, HEADS_CONTEXT, 3)
    tui, headless = mode["tui_runs"], mode["headless_runs"]
    return {
        "model": model,
        "engine": engine,
        "key_to_screen_ms": key_summary(keys),
        "run_mode": run_mode_summary(tui, headless),
        "all_heads": heads,
        "memory": memory,
    }


def format_model(result: dict) -> str:
    keys, run, heads, memory = result["key_to_screen_ms"], result["run_mode"], result["all_heads"], result["memory"]
    return "\n".join(
        [
            f"model benchmark: --model {result['model']}, engine {result['engine']} (CPU)",
            f"key n to the first frame with the token  p50 {keys['p50']:.1f} ms  p95 {keys['p95']:.1f} ms;  to the whole repaint  "
            f"p50 {keys['repaint_p50']:.1f} ms  p95 {keys['repaint_p95']:.1f} ms  ({keys['n']} keys)",
            f"run mode (g)  {run['tui_tokens_per_second']:.1f} tok/s in the TUI  {run['headless_tokens_per_second']:.1f} headless  "
            f"ratio {run['ratio']:.2f}  (medians of {run['n']} runs each)",
            f"all-heads statistics  {heads['ms']:.0f} ms for {heads['tokens']} tokens x {heads['heads']} heads (median of {heads['repeats']})",
            f"memory (RSS)  {memory['ready_mib']:.0f} MiB ready, {memory['after_mib']:.0f} MiB after {memory['tokens']} tokens "
            f"(peak {memory['peak_mib']:.0f} MiB)",
        ]
    )


# ---- command line ----------------------------------------------------------------------------
def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="tfund bench", description="tfund-tui benchmarks (start-up; per-token UI time and bytes)")
    sub = parser.add_subparsers(dest="benchmark", required=True, parser_class=OneLineParser)
    startup = sub.add_parser("startup", help="time to first frame and model-ready in tmux, vs a minimal Textual app")
    startup.add_argument("--model", type=model_arg, default="toy")
    startup.add_argument("--repeats", type=repeats_arg, default=5)
    startup.add_argument("--json", action="store_true")
    tui = sub.add_parser("tui", help="model ready, torch under load, run mode vs headless, key to screen (issue 14)")
    tui.add_argument("--model", type=model_arg, default="toy")
    tui.add_argument("--engine", choices=["auto", "numpy", "torch"], default=None, help="the TUI's and headless engine (default: theirs)")
    tui.add_argument("--repeats", type=repeats_arg, default=3)
    tui.add_argument("--tokens", type=tokens_arg, default=200, help="tokens per run (default 200)")
    tui.add_argument("--keys", type=repeats_arg, default=30, help="n keys timed (default 30)")
    tui.add_argument("--size", type=size_arg, default=(100, 30))
    tui.add_argument("--json", action="store_true")
    real = sub.add_parser("model", help="a real model: key to screen, run mode vs headless, all-heads statistics, RSS after 1,024 tokens")
    real.add_argument("--model", type=model_arg, default="smollm2")
    real.add_argument("--engine", choices=["numpy", "torch"], default="numpy")
    real.add_argument("--keys", type=repeats_arg, default=20, help="n keys timed (default 20)")
    real.add_argument("--runs", type=repeats_arg, default=3, help="run-mode pairs, TUI and headless (default 3)")
    real.add_argument("--tokens", type=tokens_arg, default=64, help="tokens per run (default 64)")
    real.add_argument("--size", type=size_arg, default=(100, 30))
    real.add_argument("--json", action="store_true")
    render = sub.add_parser("render", help="per-token UI update time and bytes written to the terminal")
    render.add_argument("--model", type=model_arg, default=None, help="model name or directory (default: toy)")
    render.add_argument("--config", choices=RANDOM_CONFIGS, default=None, help="random-init model of this GPT-2 shape instead of --model")
    render.add_argument("--contexts", type=contexts_arg, default=[32, 128, 256], help="context lengths (default 32,128,256)")
    render.add_argument("--tokens", type=tokens_arg, default=20, help="tokens timed in-process per context (default 20)")
    render.add_argument("--byte-tokens", type=tokens_arg, default=5, help="tokens counted in the pseudo-terminal per context (default 5)")
    render.add_argument("--size", type=size_arg, default=(100, 30), help="terminal WIDTHxHEIGHT (default 100x30)")
    render.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.benchmark == "startup":
        result = startup_bench(args.model, args.repeats)
        print(json.dumps(result) if args.json else format_startup(result))
        return 0
    if args.benchmark == "tui":
        result = tui_bench(args.model, args.engine, args.repeats, args.tokens, args.keys, args.size)
        print(json.dumps(result) if args.json else format_tui(result))
        return 0
    if args.benchmark == "model":
        result = model_bench(args.model, args.engine, args.keys, args.runs, args.tokens, args.size)
        print(json.dumps(result) if args.json else format_model(result))
        return 0
    if args.model and args.config:
        usage_exit("give either --model or --config, not both")
    from engine.runtime.loading import ModelLoadError

    try:
        result = render_bench(args.model, args.config, args.contexts, args.tokens, args.byte_tokens, args.size)
    except ModelLoadError as error:
        usage_exit(str(error))
    print(json.dumps(result) if args.json else format_render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
