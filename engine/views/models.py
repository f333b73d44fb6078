"""`tfund models`: what can be opened here, with family, size, file type, memory and which engine runs it.

Sources: the embedded toy, `smollm2` (fetched or not), the Hugging Face hub cache, Ollama's store, and
GGUF files named on the command line. Only headers are read (config.json, safetensors headers, GGUF
headers): neither torch nor transformers is imported, and no weights are loaded.
"""

from __future__ import annotations

import json
import math
import struct
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.formats.gguf import BYTES_PER_PARAM
from engine.model.families import config_problem, model_type_problem
from engine.runtime.sources import TOY_MODEL_DIR
from engine.store import StoreError, ollama, smollm2
from engine.store.cache import cache_dir
from engine.store.gguf_header import GGUFHeader, read_header

ENGINES = ("numpy", "torch")


def engine_support(config: dict, name: str = "this model") -> dict[str, str | None]:
    """Engine → None if it runs a model with this HF-style config (model_type and sizes), else why not.

    The engines' own refusal function decides (engine.model.families.config_problem): the torch engine
    runs what transformers loads for it, the NumPy engine what it implements itself.
    """
    return {"numpy": config_problem(config, "numpy", name=name), "torch": config_problem(config, "torch", name=name)}


def architecture_support(architecture: str, name: str = "this model") -> dict[str, str | None]:
    """Engine → None if it runs GGUF files of this architecture, else why not. A header scan reads the
    architecture and sizes, not every setting: a file's rope scaling or tokenizer is checked when it loads."""
    problem = model_type_problem({"model_type": architecture}, name=name)
    return dict.fromkeys(ENGINES, problem)


@dataclass
class CatalogEntry:
    name: str  # what --model takes
    source: str  # toy, smollm2, hf-cache, ollama, gguf
    family: str | None  # the config's model_type or the GGUF's architecture
    n_params: int | None
    file_type: str | None  # F32, BF16 (safetensors), Q4_1, Q8_0 (GGUF)
    engines: dict[str, str | None] = field(default_factory=dict)  # engine → None (runs it) or why not
    path: str | None = None
    note: str | None = None  # not fetched, unreadable, ...

    @property
    def memory_bytes(self) -> int | None:
        """The weights in float32, as both engines hold them."""
        return None if self.n_params is None else self.n_params * BYTES_PER_PARAM

    def as_dict(self) -> dict:
        return {**asdict(self), "memory_bytes": self.memory_bytes}


def list_models(gguf_paths: Iterable[str] = ()) -> list[CatalogEntry]:
    """Every model that can be opened here, toy first; `gguf_paths` adds GGUF files (or folders of them)."""
    entries = [directory_entry("toy", "toy", TOY_MODEL_DIR), smollm2_entry()]
    entries += [directory_entry(name, "hf-cache", path) for name, path in hub_cache_models()]
    entries += ollama_entries()
    for given in gguf_paths:
        path = Path(given).expanduser()
        files = sorted(path.glob("*.gguf")) if path.is_dir() else [path]
        entries += [gguf_entry(str(file), "gguf", file) for file in files] or [
            unreadable_entry(given, "gguf", f"no .gguf file in '{given}'")
        ]
    return entries


# ---- transformers directories (the toy, the hub cache) -----------------------------------------------
def directory_entry(name: str, source: str, path: Path) -> CatalogEntry:
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return unreadable_entry(name, source, f"no readable config.json in '{path}' ({error.__class__.__name__})", path)
    if not isinstance(config, dict):
        return unreadable_entry(name, source, f"'{path / 'config.json'}' is not a JSON object", path)
    n_params, dtype = safetensors_size(path)
    return CatalogEntry(
        name=name,
        source=source,
        family=config.get("model_type"),
        n_params=n_params,
        file_type=dtype,
        engines=engine_support(config, name=f"'{name}'"),
        path=str(path),
        note=None if n_params is not None else "no readable safetensors weights: size unknown",
    )


def safetensors_size(folder: Path) -> tuple[int | None, str | None]:
    """(parameters, commonest dtype) from the headers of the folder's .safetensors files; (None, None) without any."""
    counts: Counter[str] = Counter()
    for file in sorted(folder.glob("*.safetensors")):
        try:
            with open(file, "rb") as f:
                (length,) = struct.unpack("<Q", f.read(8))  # the header: 8 bytes of length, then JSON
                if length > file.stat().st_size - 8:  # not a header this file can hold (damaged, or not safetensors)
                    return None, None
                header = json.loads(f.read(length))
            for key, tensor in header.items():
                if key != "__metadata__":
                    counts[tensor["dtype"]] += math.prod(tensor["shape"])
        except (OSError, ValueError, struct.error, AttributeError, KeyError, TypeError):  # a damaged header: size unknown
            return None, None
    if not counts:
        return None, None
    return sum(counts.values()), counts.most_common(1)[0][0]


def hub_cache_models() -> list[tuple[str, Path]]:
    """(repo id, snapshot folder) of every model in the Hugging Face hub cache (the snapshot refs/main names)."""
    from huggingface_hub.constants import HF_HUB_CACHE

    found = []
    for repo in sorted(Path(HF_HUB_CACHE).glob("models--*")):
        snapshots = sorted((repo / "snapshots").glob("*"), key=lambda path: path.stat().st_mtime)
        ref = repo / "refs" / "main"
        chosen = repo / "snapshots" / ref.read_text().strip() if ref.is_file() else (snapshots[-1] if snapshots else None)
        if chosen is not None and chosen.is_dir():
            found.append((repo.name.removeprefix("models--").replace("--", "/"), chosen))
    return found


# ---- GGUF files: smollm2, Ollama, paths ---------------------------------------------------------------
def gguf_entry(name: str, source: str, path: Path) -> CatalogEntry:
    try:
        header = read_header(path)
    except StoreError as error:
        return unreadable_entry(name, source, str(error), path)
    return header_entry(name, source, header, path)


def header_entry(name: str, source: str, header: GGUFHeader, path: Path | None, note: str | None = None) -> CatalogEntry:
    return CatalogEntry(
        name=name,
        source=source,
        family=header.architecture,
        n_params=header.n_params,
        file_type=header.file_type,
        engines=architecture_support(header.architecture, name=f"'{name}'"),
        path=None if path is None else str(path),
        note=note,
    )


def smollm2_entry() -> CatalogEntry:
    """Fetched: read from its header; not fetched: the pinned file's figures, and how to fetch it."""
    if smollm2.is_fetched():
        return gguf_entry("smollm2", "smollm2", smollm2.cached_path())
    return header_entry("smollm2", "smollm2", smollm2.SMOLLM2_HEADER, None, note="not fetched: `tfund fetch smollm2` downloads it")


def ollama_entries() -> list[CatalogEntry]:
    try:
        names = ollama.list_models()
    except StoreError as error:
        return [unreadable_entry(f"{ollama.PREFIX}*", "ollama", str(error))]
    entries = []
    for name in names:
        try:
            model = ollama.resolve(f"{ollama.PREFIX}{name}")
        except StoreError as error:
            entries.append(unreadable_entry(f"{ollama.PREFIX}{name}", "ollama", str(error)))
            continue
        entries.append(gguf_entry(f"{ollama.PREFIX}{name}", "ollama", model.blob))
    return entries


def unreadable_entry(name: str, source: str, why: str, path: Path | None = None) -> CatalogEntry:
    return CatalogEntry(
        name=name, source=source, family=None, n_params=None, file_type=None, path=None if path is None else str(path), note=why
    )


# ---- output --------------------------------------------------------------------------------------------
def human(count: int | None, unit: str = "") -> str:
    """3_000_000 → 3.0M; with a unit, 12_000_000 → 12.0 MB; None → '?'."""
    if count is None:
        return "?"
    suffixes = ["", "K", "M", "G", "T"]
    power = 0
    while count >= 1000 and power < len(suffixes) - 1:
        count, power = count / 1000, power + 1
    number = f"{count:.0f}" if power == 0 else f"{count:.1f}"
    return f"{number} {suffixes[power]}{unit}" if unit else f"{number}{suffixes[power]}"


def format_models(entries: list[CatalogEntry]) -> str:
    """A table, then each distinct reason an engine gives for not running a model, and each note."""
    columns: list[tuple[str, Callable[[CatalogEntry], str]]] = [
        ("MODEL", lambda e: e.name),
        ("SOURCE", lambda e: e.source),
        ("FAMILY", lambda e: e.family or "?"),
        ("PARAMS", lambda e: human(e.n_params)),
        ("TYPE", lambda e: e.file_type or "?"),
        ("MEMORY", lambda e: human(e.memory_bytes, "B")),
        *[
            (engine.upper(), lambda e, engine=engine: "?" if engine not in e.engines else ("yes" if e.engines[engine] is None else "no"))
            for engine in ENGINES
        ],
    ]
    rows = [[title for title, _ in columns]] + [[cell(entry) for _, cell in columns] for entry in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(row, widths)).rstrip() for row in rows]
    lines.append("MEMORY: the weights in float32, as both engines hold them (a GGUF is dequantized on load).")
    for entry in entries:
        if entry.note:
            lines.append(f"{entry.name}: {entry.note}")
        reasons = dict.fromkeys(reason for reason in entry.engines.values() if reason)
        lines += [f"{entry.name}: {reason}" for reason in reasons]
    return "\n".join(lines)


def models_json(entries: list[CatalogEntry]) -> dict:
    return {
        "models": [entry.as_dict() for entry in entries],
        "cache": str(cache_dir()),
        "ollama_store": str(ollama.store_root() or ""),
    }
