"""A GGUF file converted once and kept in tfund's cache, so that the second load is fast.

Reading a GGUF means parsing its metadata (SmolLM2's 49,152 tokens and 48,900 merges) and dequantizing
every tensor: seconds. A conversion keeps what that produced, in a folder of tfund's cache
(engine.store.cache: where it is, and the size limit, `may_cache_conversion`):

    tfund-source.json                      what it was made from (below), the file type, the parameter count
    config.json, tokenizer.json, tokenizer_config.json
    numpy/params.json, numpy/weights.bin   the NumPy engine's weights in its own layout (engine.model.families:
                                           role-named, [in, out], q|k|v fused, Q and K rows in transformers'
                                           order, the unembedding its own [d, V] copy): their bytes in one
                                           file, memory-mapped on load, so a second load copies nothing
    model.safetensors                      float32 weights under Hugging Face names: the torch engine's checkpoint

Each engine writes its own part the first time it loads the file, and only when that part is within the
size limit (SmolLM2-135M: 651 MB for numpy/, 538 MB for model.safetensors; a 1B model: 4 GB, not kept).

A conversion names the file it came from (absolute path, size, modification time of each part) and the
version of the conversion; a file changed since, or a newer tfund, converts again. A part that does not
read back (half-written, damaged) is made again from the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import numpy as np

from engine.formats.gguf import (
    BYTES_PER_PARAM,
    GGUFError,
    GGUFFile,
    GGUFMemoryError,
    available_memory,
    check_memory,
    find_gguf,
    memory_problem,
    open_gguf,
    split_parts,
)
from engine.model.architecture import Architecture
from engine.model.families import params_from_state
from engine.store.cache import conversions_dir, may_cache_conversion

CONVERSION_VERSION = 3  # raise when the conversion of the same file changes (3: the NumPy engine's own layout, one mapped file)
SOURCE_FILE = "tfund-source.json"
NUMPY_PART = "numpy"  # the NumPy engine's weights: weights.bin and params.json
TORCH_PART = "model.safetensors"  # the torch engine's: a transformers checkpoint beside config.json
PARAMS_INDEX = "params.json"  # the params' tree (engine.model.families), each array by its place in WEIGHTS_FILE
WEIGHTS_FILE = "weights.bin"  # the arrays' float32 bytes, one after another
ALIGNMENT = 64  # bytes: each array starts at a multiple of it, as NumPy's own .npy files do


def source_of(shards: tuple[Path, ...]) -> dict:
    """What identifies the GGUF a conversion came from."""
    files = []
    for shard in shards:
        stat = shard.stat()
        files.append({"path": str(shard.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return {"version": CONVERSION_VERSION, "files": files}


def conversion_dir(shards: tuple[Path, ...], root: Path | None = None) -> Path:
    """Where the conversion of this GGUF lives: conversions/{file stem}-{hash of its path}, under `root`
    (a cache folder of its own) or tfund's cache."""
    first = shards[0].resolve()
    digest = hashlib.sha256(str(first).encode("utf-8")).hexdigest()[:16]
    return (root / "conversions" if root else conversions_dir()) / f"{first.stem}-{digest}"


def params_bytes(tree) -> int:
    """Bytes of the arrays in a params tree (nested dicts and lists; a missing bias is None)."""
    if isinstance(tree, dict):
        return sum(params_bytes(value) for value in tree.values())
    if isinstance(tree, list):
        return sum(params_bytes(value) for value in tree)
    return 0 if tree is None else tree.nbytes


def save_params(params: dict, folder: Path) -> None:
    """Write a params tree into `folder`: every array's float32 bytes one after another in weights.bin (each
    at a multiple of 64 bytes, in its own memory order), and params.json: the tree with each array replaced
    by {"@": [offset, shape, order]}, and the file's size."""
    folder.mkdir()
    with open(folder / WEIGHTS_FILE, "wb") as f:

        def put(tree):
            if isinstance(tree, dict):
                return {key: put(value) for key, value in tree.items()}
            if isinstance(tree, list):
                return [put(value) for value in tree]
            if tree is None:
                return None
            f.write(bytes(-f.tell() % ALIGNMENT))
            order = "F" if tree.flags.f_contiguous and not tree.flags.c_contiguous else "C"  # as it is: the same products, bit for bit
            place = [f.tell(), list(tree.shape), order]
            f.write(np.asarray(tree, dtype=np.float32).tobytes(order=order))
            return {"@": place}

        index = {"params": put(params), "bytes": f.tell()}
    (folder / PARAMS_INDEX).write_text(json.dumps(index), encoding="utf-8")


def map_params(folder: Path) -> dict:
    """The params tree save_params wrote, every array a read-only view of one memory mapping of
    weights.bin: nothing is read until the engine touches it, and then the OS pages it in from its page
    cache. OSError, ValueError, TypeError or KeyError if the folder is damaged."""
    index = json.loads((folder / PARAMS_INDEX).read_text(encoding="utf-8"))
    weights = folder / WEIGHTS_FILE
    if weights.stat().st_size != index["bytes"]:
        raise ValueError(f"{weights} is not the size {PARAMS_INDEX} says")
    buffer = np.memmap(weights, dtype=np.uint8, mode="r")  # one mapping for every array

    def get(tree):
        if isinstance(tree, list):
            return [get(value) for value in tree]
        if tree is None:
            return None
        if "@" in tree:
            offset, shape, order = tree["@"]
            return np.ndarray(shape, dtype=np.float32, buffer=buffer, offset=offset, order=order)  # a view: no copy
        return {key: get(value) for key, value in tree.items()}

    return get(index["params"])


class GGUFModelFile:
    """A GGUF model on disk and its conversion in tfund's cache: what the engines load it through.

    model_file = GGUFModelFile("path/to/file.gguf" or a directory holding one model)
    model_file.config()                       # config.json of the kept conversion, else from the header
    model_file.numpy_params(arch, progress)   # the NumPy engine's weights: mapped, or read and kept
    model_file.keep(progress)                 # the folder as a transformers checkpoint (torch engine)
    """

    def __init__(self, path: str | os.PathLike, root: Path | None = None):
        self.path = find_gguf(path)  # GGUFError: none there, several models, not there at all
        self.shards = split_parts(self.path)
        self.directory = conversion_dir(self.shards, root)

    @cached_property
    def source(self) -> dict:
        try:
            return source_of(self.shards)
        except OSError as error:
            raise GGUFError(f"cannot read '{self.path}': {error.strerror or error.__class__.__name__}") from None

    @cached_property
    def opened(self) -> GGUFFile:
        """The file parsed (seconds for a big vocabulary), and checked: GGUFError if tfund cannot run it."""
        gguf_file = open_gguf(self.path)
        gguf_file.check()
        return gguf_file

    def kept_meta(self) -> dict | None:
        """tfund-source.json of a conversion made from this very file by this version; None if there is none."""
        try:
            meta = json.loads((self.directory / SOURCE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) and meta.get("source") == self.source else None

    def kept_text(self, name: str) -> str | None:
        """A file of the kept conversion (config.json, tokenizer.json); None without a current one."""
        if self.kept_meta() is None:
            return None
        try:
            return (self.directory / name).read_text(encoding="utf-8")
        except OSError:
            return None

    def config(self) -> dict:
        if (text := self.kept_text("config.json")) is not None:
            try:
                return json.loads(text)
            except ValueError:
                pass
        return self.opened.config()

    def tokenizer_json(self) -> str:
        kept = self.kept_text("tokenizer.json")
        return kept if kept is not None else self.opened.tokenizer_json()

    def tokenizer_config(self) -> dict:
        if (text := self.kept_text("tokenizer_config.json")) is not None:
            try:
                return json.loads(text)
            except ValueError:
                pass
        return self.opened.tokenizer_config()

    @property
    def file_type(self) -> str:
        meta = self.kept_meta()
        return meta["file_type"] if meta and "file_type" in meta else self.opened.file_type

    def check_memory(self) -> None:
        """GGUFMemoryError when the float32 weights would not fit in the memory available now."""
        meta = self.kept_meta()
        if meta is not None and isinstance(n_params := meta.get("n_params"), int):
            if problem := memory_problem(self.path.name, n_params * BYTES_PER_PARAM, n_params, available_memory()):
                raise GGUFMemoryError(problem)
        else:
            check_memory(self.opened)

    def numpy_params(self, arch: Architecture, progress: Callable[[str], None] | None = None) -> dict:
        """The NumPy engine's weights for `arch` (engine.model.families' layout): mapped from the kept
        conversion, else read from the file and kept (within the size limit). Raises GGUFError
        (GGUFMemoryError when the float32 weights would not fit) with one sentence."""
        progress = progress or (lambda text: None)
        self.check_memory()
        if self.kept_meta() is not None:
            progress(f"mapping the conversion of {self.path.name} kept in {self.directory.parent}")
            try:
                return map_params(self.directory / NUMPY_PART)
            except (OSError, ValueError, TypeError, KeyError, AttributeError):  # absent, half-written or damaged: convert again
                pass
        params = params_from_state(arch, self.read_state(progress))
        if may_cache_conversion(params_bytes(params)):
            self.write_part(NUMPY_PART, lambda folder: save_params(params, folder))
        return params

    def keep(self, progress: Callable[[str], None] | None = None) -> Path | None:
        """The directory of the kept conversion as a transformers checkpoint (model.safetensors, config.json,
        tokenizer files), converting now if it has none; None when the model is too big to keep or the
        cache cannot be written."""
        from safetensors import safe_open
        from safetensors.numpy import save_file

        weights = self.directory / TORCH_PART
        if self.kept_meta() is not None:
            try:
                with safe_open(str(weights), framework="np"):  # reads the header: a cut or damaged file fails here
                    return self.directory
            except Exception:  # absent or damaged (OSError, safetensors' own errors): convert again
                pass
        if not may_cache_conversion(self.opened.memory_needed):
            return None
        state = self.read_state(progress or (lambda text: None))
        written = self.write_part(TORCH_PART, lambda path: save_file(state, str(path), metadata={"format": "pt"}))
        return self.directory if written else None

    def read_state(self, progress: Callable[[str], None]) -> dict[str, np.ndarray]:
        """The file's tensors dequantized to float32 under Hugging Face names (seconds)."""
        progress(f"reading {self.path.name}")
        gguf_file = self.opened
        progress(f"dequantizing {gguf_file.file_type} weights to float32")
        return gguf_file.state_dict()

    def write_part(self, name: str, write: Callable[[Path], None]) -> bool:
        """Keep one engine's part (NUMPY_PART, TORCH_PART), `write(path)` making it. Without a current
        conversion the folder is made anew (config, tokenizer and tfund-source.json too). Written aside,
        then moved in: a reader never sees half of it. False, leaving nothing behind, when the disk
        refuses (full, read-only): the load goes on without it."""
        current = self.kept_meta() is not None
        try:
            self.directory.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{self.directory.name}-", dir=self.directory.parent))
        except OSError:
            return False
        try:
            write(staging / name)
            if current:
                kept = self.directory / name
                shutil.rmtree(kept) if kept.is_dir() else kept.unlink(missing_ok=True)  # a damaged one
                os.replace(staging / name, kept)
                shutil.rmtree(staging, ignore_errors=True)
                return True
            gguf_file = self.opened
            (staging / "config.json").write_text(json.dumps(gguf_file.config(), indent=2), encoding="utf-8")
            (staging / "tokenizer.json").write_text(gguf_file.tokenizer_json(), encoding="utf-8")
            tokenizer_config = json.dumps(gguf_file.tokenizer_config(), indent=2)
            (staging / "tokenizer_config.json").write_text(tokenizer_config, encoding="utf-8")
            meta = {"source": self.source, "file_type": gguf_file.file_type, "n_params": gguf_file.n_params}
            (staging / SOURCE_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
            shutil.rmtree(self.directory, ignore_errors=True)  # an older conversion of a file since changed
            os.replace(staging, self.directory)
            return True
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            return False
