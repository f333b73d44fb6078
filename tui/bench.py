"""TUI timings for docs/BENCHMARKS.md: `python -m tui.bench [--model toy] [--repeats 3]`.

- first frame and model ready: the installed `tfund-tui` launched in tmux (a real terminal), the
  screen polled every 10 ms until the pane titles appear, then until the status says "ready";
- per-token UI update at 32 and 128 tokens of context: in-process (headless), the time the UI thread
  spends on one token: applying the event, redrawing every pane and rendering the screen, next to the
  engine's own time for that token.
Figures are medians; they depend on the machine, so they are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import time
import uuid

from engine.events import SamplingConfig

POLL_S = 0.01


def tmux_launch_times(model: str, timeout_s: float = 120.0) -> tuple[float, float]:
    """Seconds from launch to the first frame and to model-ready, in a 100×30 tmux window."""
    script = shutil.which("tfund-tui")
    if script is None:
        raise SystemExit("tfund-tui is not installed (pip install -e .)")
    socket = f"tfund-bench-{uuid.uuid4().hex[:8]}"
    tmux = ["tmux", "-L", socket]
    command = f"env -u COLORTERM TERM=xterm-256color {script} --model {model} --device cpu"
    started = time.perf_counter()
    subprocess.run([*tmux, "new-session", "-d", "-x", "100", "-y", "30", command], check=True)
    first_frame = ready = None
    try:
        while time.perf_counter() - started < timeout_s and ready is None:
            screen = subprocess.run([*tmux, "capture-pane", "-p"], capture_output=True, text=True).stdout
            now = time.perf_counter() - started
            if first_frame is None and "Parameters" in screen:
                first_frame = now
            if "ready" in screen:
                ready = now
            time.sleep(POLL_S)
        subprocess.run([*tmux, "send-keys", "q"])
        time.sleep(0.5)
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
    if first_frame is None or ready is None:
        raise SystemExit("the app did not become ready in time")
    return first_frame, ready


async def ui_update_times(model: str, contexts: list[int], tokens_per_context: int) -> dict[int, tuple[float, float]]:
    """Median (UI ms, engine ms) per token once the context holds each of `contexts` tokens."""
    from engine.models import load_model
    from tui.app import make_app
    from tui.messages import TokensGenerated

    loaded = load_model(model, device="cpu")
    app = make_app(model=loaded, config=SamplingConfig(temperature=0.8, seed=0), device="cpu", palette="color")
    results = {}
    async with app.run_test(size=(100, 30)) as pilot:
        while app.sampler is None:
            await pilot.pause(0.05)
        sampler = app.sampler
        for context in contexts:
            sampler.set_prompt("In a small village,")
            while len(sampler.tokens) < context - 1:
                sampler.step() if not sampler.done else sampler.undo()
            app.apply_context(app.context_of(sampler))
            ui_ms, engine_ms = [], []
            for _ in range(tokens_per_context):
                if sampler.done:
                    sampler.undo()
                event = sampler.step()
                message = TokensGenerated([event], sampler.preview(), sampler.config, None)
                began = time.perf_counter()
                app.on_tokens_generated(message)
                app.redraw_now()
                app.screen._compositor.render_update(full=True)  # every pane's lines, as a repaint would
                ui_ms.append((time.perf_counter() - began) * 1e3)
                engine_ms.append(event.timings["total"])
                sampler.undo()  # stay at this context length
                app.transcript.pop(sampler.last_lens, sampler.last_norms, sampler.last_cosines)
                await pilot.pause()
            results[context] = (statistics.median(ui_ms), statistics.median(engine_ms))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tui.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="toy")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=20, help="tokens timed at each context length")
    args = parser.parse_args()
    launches = [tmux_launch_times(args.model) for _ in range(args.repeats)]
    print(f"model {args.model}, {args.repeats} launches in tmux 100x30 (median)")
    print(f"  first frame   {statistics.median(f for f, _ in launches) * 1e3:7.0f} ms")
    print(f"  model ready   {statistics.median(r for _, r in launches) * 1e3:7.0f} ms")
    updates = asyncio.run(ui_update_times(args.model, [32, 128], args.tokens))
    for context, (ui_ms, engine_ms) in updates.items():
        print(f"  context {context:4d}: UI update {ui_ms:6.1f} ms/token, engine {engine_ms:6.1f} ms/token, ratio {ui_ms / engine_ms:5.1f}")


if __name__ == "__main__":
    main()
