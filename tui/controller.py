"""The engine controller: one background thread that runs typed commands, in order, through a handler.

UI thread (`send`, `toggle_run`, `pause`): a command the handler cannot take, or one that must wait
for a run to be paused, is refused with one sentence, said once while it is still on screen; at most
MAX_QUEUED commands wait; a newer Preview replaces a queued one; during a run a Preview's settings go
to the run, which applies them before its next token.
Engine thread: each command goes to the handler (tui/handlers.py), which posts dataclass messages
through `post` (the session's controller: to the main screen; the compare screen's: to itself); a Run's items are posted in batches, at most the handler's
`batches_per_second` times a second. Every command ends with CommandDone, so the screen knows when nothing is left to do.
The thread is a daemon: quitting never waits for a model that is still loading.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

from textual.message import Message

from tui.commands import Command, Load, Parity, Pause, Preview, Run
from tui.messages import EngineFailed

# A live run's tokens reach the screen in at most this many batches (redraws) a second. Each redraw costs
# the UI thread ~15 ms of the interpreter the engine thread shares, on a 2-core CPU: a toy run in the TUI
# made 0.61-0.69x the headless tok/s at 10 a second, 0.69-0.79x at 5 (medians of 7 runs, two sessions each).
RUN_BATCHES_PER_SECOND = 5
BATCHES_PER_SECOND = 30  # other runs': a replay's steps (each one shown, at its own pace), compare's pairs
MAX_QUEUED = 16  # keys pressed faster than the engine answers wait here; beyond this they are dropped
NOTE_SECONDS = 3  # how long a refusal note stays on screen (and is not repeated)
RUNNING_REFUSAL = "Running — press g to pause first."
CLOSE_WAIT_S = 10  # the longest quitting waits for the command in progress (one token, or one parity check)


class Handler(Protocol):
    """What the controller drives: the live sampler, a replay, or the compare screen's two samplers."""

    batches_per_second: float  # a run's items reach the screen in at most this many batches a second

    def refusal(self, command: Command) -> str | None:
        """Why this command cannot run here (one sentence), or None. Called on the UI thread: pure."""

    def handle(self, command: Command, post: Callable[[Message], None]) -> Handler | None:
        """Run one command on the engine thread; return a handler to replace this one (after a Load)."""

    def run(self, command: Run, stop: threading.Event, newer_settings: Callable[[], Any], post: Callable[[Message], None]) -> Iterator[Any]:
        """Yield a Run's items (tokens, steps) until done or `stop` is set; apply newer_settings() between them."""

    def batch(self, items: list) -> Message:
        """The message carrying a batch of run items."""


@dataclass
class CommandDone(Message):
    """The engine thread finished `command` (also after an error or a pause)."""

    command: Command


class SaidOnce:
    """Notifications that are not repeated while the same one is still shown (mashed keys)."""

    def __init__(self, notify: Callable[..., None]) -> None:
        self.notify = notify
        self.last: tuple[str, str, float] = ("", "", 0.0)  # text, severity, when (monotonic)

    def say(self, text: str, severity: str = "information") -> None:
        now = time.monotonic()
        if (text, severity) == self.last[:2] and now - self.last[2] < NOTE_SECONDS:
            return
        self.last = (text, severity, now)
        self.notify(text, severity=severity, timeout=NOTE_SECONDS)


class EngineController:
    def __init__(self, post: Callable[[Message], None], handler: Handler, notify: Callable[..., None]) -> None:
        """`post`: where messages go (thread-safe: a screen's post_message); `notify`: the app's, for refusals."""
        self.post = post
        self.handler = handler  # replaced by the engine thread after a Load; only that thread calls it
        self.notes = SaidOnce(notify)
        self.outstanding = 0  # commands sent and not yet reported done (UI thread only)
        self._pending: deque[Command] = deque()
        self._wake = threading.Condition()  # guards _pending, _current, _run_settings, _stop
        self._current: Command | None = None  # what the engine thread runs now
        self._run_settings: Any = None  # the newest settings a Preview sent during the current run
        self._stop = threading.Event()  # set to end the current run before its next item
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="tfund-engine", daemon=True)
        self._thread.start()

    # ---- UI thread -------------------------------------------------------------------------------
    @property
    def idle(self) -> bool:
        """Nothing runs or waits, and every result has reached the screen."""
        return self.outstanding == 0

    @property
    def running(self) -> bool:
        """A run is in progress or queued."""
        with self._wake:
            return self._run_in_progress()

    @property
    def pausing(self) -> bool:
        with self._wake:
            return isinstance(self._current, Run) and self._stop.is_set()

    def say(self, text: str, severity: str = "information") -> None:
        self.notes.say(text, severity)

    def send(self, command: Command) -> bool:
        """Queue `command`, or say why not. True when it will run (or was merged into what will)."""
        if isinstance(command, Pause):
            self.pause()
            return True
        refusal = self.handler.refusal(command)
        with self._wake:
            run_in_progress = self._run_in_progress()
            if refusal is None and run_in_progress and command.refused_while_running:
                refusal = RUNNING_REFUSAL
            if refusal is None and isinstance(command, Preview) and isinstance(self._current, Run):
                self._run_settings = command.settings  # the run's next token uses them
                return True
            if refusal is None and isinstance(command, Preview) and run_in_progress:  # a run not started yet
                self._pending = deque(replace(c, settings=command.settings) if isinstance(c, Run) else c for c in self._pending)
                return True
            if refusal is None:
                if isinstance(command, (Preview, Parity)):
                    self._drop_queued(type(command))  # the newer one shows the latest anyway
                if len(self._pending) >= MAX_QUEUED:
                    self.notes.say(f"Still working through {len(self._pending)} earlier keys; this one was dropped.", "warning")
                    return False
                self._pending.append(command)
                self.outstanding += 1
                self._wake.notify()
                return True
        self.notes.say(refusal)
        return False

    def toggle_run(self, command: Run) -> None:
        """g: pause the run in progress, cancel one still queued, or start `command`."""
        if self.running:
            self.pause()
        else:
            self.send(command)

    def pause(self) -> None:
        with self._wake:
            self._stop.set()
            self._drop_queued(Run)

    def done(self, message: CommandDone) -> None:
        """Each CommandDone is reported here once handled (results before it are already shown)."""
        self.outstanding -= 1

    def close(self) -> None:
        """End the thread after its current command (a run stops before its next item) and wait for it.

        A load is not waited for (quitting while torch imports exits at once); any other command ends
        within a token, and the process must not exit while the thread is inside torch.
        """
        with self._wake:
            self._closed = True
            self._stop.set()
            self._wake.notify()
            loading = isinstance(self._current, Load)
        if not loading and self._thread is not threading.current_thread():
            self._thread.join(CLOSE_WAIT_S)

    def _run_in_progress(self) -> bool:  # call with the lock held
        return isinstance(self._current, Run) or any(isinstance(c, Run) for c in self._pending)

    def _drop_queued(self, kind: type) -> None:  # call with the lock held
        kept = [c for c in self._pending if not isinstance(c, kind)]
        self.outstanding -= len(self._pending) - len(kept)
        self._pending = deque(kept)

    # ---- engine thread ---------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                command = self._current = self._pending.popleft()
                self._stop = threading.Event()  # a pause pressed for an earlier run must not stop this one
                self._run_settings = None
            try:
                self._execute(command)
            except Exception as error:  # one error path: the screen shows it, the app stays up
                self.post(EngineFailed(error, loading=isinstance(command, Load)))
            finally:
                with self._wake:
                    self._current = None
                self.post(CommandDone(command))

    def _execute(self, command: Command) -> None:
        if not isinstance(command, Run):
            self.handler = self.handler.handle(command, self.post) or self.handler
            return
        batch, posted_at = [], time.perf_counter()
        try:
            for item in self.handler.run(command, self._stop, self._take_run_settings, self.post):
                batch.append(item)
                if time.perf_counter() - posted_at >= 1 / self.handler.batches_per_second:
                    self.post(self.handler.batch(batch))
                    batch, posted_at = [], time.perf_counter()
        finally:  # an item that fails (out of memory) must not take the items before it off the screen
            if batch:
                self.post(self.handler.batch(batch))
        settings = self._take_run_settings()
        if settings is not None:  # changed after the run's last token: show the candidates under them
            self.handler.handle(Preview(settings), self.post)

    def _take_run_settings(self) -> Any:
        with self._wake:
            settings, self._run_settings = self._run_settings, None
            return settings
