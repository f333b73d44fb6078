"""Helpers for the Pilot tests: the usual terminal size, waiting on the app, a model that never ends its text."""

import dataclasses

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


def endless(model):
    """The loaded model with no end-of-text id, so that a run goes on until it is paused (the sampler stops at
    any of `eos_ids`; the start token an empty prompt begins with is kept)."""
    return dataclasses.replace(model, bos_id=model.start_id, eos_ids=())
