"""Helpers for the Pilot tests: the usual terminal size, waiting on the app, an endless tokenizer."""

from tests.conftest import sampler_of, wait_until_async

SIZE = (100, 30)


async def wait_until(pilot, condition, what: str) -> None:
    """Poll `condition()` between short pilot pauses (the app runs meanwhile); fail naming `what`."""
    await wait_until_async(condition, what, interval=0.01, pause=pilot.pause)


async def settle(pilot) -> None:
    """Wait until the model is ready and no engine job runs or waits."""
    app = pilot.app
    await wait_until(pilot, lambda: sampler_of(app) is not None and app.session.engine.idle, "the engine")
    await pilot.pause()  # the process is idle now: let the last redraw happen


def notifications(app) -> list[str]:
    """The messages of the app's current notifications (Textual has no public accessor: the one private read)."""
    return [str(n.message) for n in app._notifications]


class EndlessTokenizer:
    """The toy tokenizer with end-of-text disabled, so that a run goes on until it is paused."""

    eos_token_id = -1

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)
