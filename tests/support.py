"""What a test needs from outside Python (a browser, tmux): skip with a reason when it is missing, or,
with TFUND_REQUIRE_ALL=1 (which .ci/run sets), fail, so that CI never passes on a skip."""

import os

import pytest

REQUIRE_ALL_ENV = "TFUND_REQUIRE_ALL"


def require(available: bool, what: str, install_hint: str) -> None:
    """Go on when `available`; otherwise skip (locally) or fail (under TFUND_REQUIRE_ALL=1), naming
    `what` is missing and how to install it."""
    if available:
        return
    reason = f"{what} is not installed: {install_hint}"
    if os.environ.get(REQUIRE_ALL_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ALL_ENV}=1 turns this skip into a failure)", pytrace=False)
    pytest.skip(reason)
