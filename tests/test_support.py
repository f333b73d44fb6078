"""tests/support.require: a missing tool skips with the install hint, and fails under TFUND_REQUIRE_ALL=1."""

import pytest

from tests.support import REQUIRE_ALL_ENV, require


def test_a_missing_tool_skips_naming_what_to_install(monkeypatch):
    monkeypatch.delenv(REQUIRE_ALL_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="tmux is not installed: apt-get install -y tmux"):
        require(False, "tmux", "apt-get install -y tmux")
    require(True, "tmux", "apt-get install -y tmux")  # present: nothing happens


def test_under_require_all_a_missing_tool_fails_instead(monkeypatch):
    monkeypatch.setenv(REQUIRE_ALL_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="Chromium is not installed"):
        require(False, "Chromium", "apt-get install -y chromium")
