"""Save the figures: SVG screenshot, attention matrix (JSON + text heatmap), candidates, session trace.

Every file is written atomically: the bytes go to a hidden temporary file in the same folder, are
fsynced, then renamed over the final name (os.replace), so a crash or a full disk never leaves a
half-written export behind. Names are checked to stay inside the chosen export folder.
"""

from __future__ import annotations

import errno
import json
import os
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np

from engine.events import Candidate
from engine.views.pieces import TOKEN_MARKERS, visible

SHADES = " ░▒▓█"  # from 0 to the matrix maximum
LABEL_WIDTH = 12  # characters of token text shown before each heatmap row


class ExportError(Exception):
    """An export could not be written; str(error) is one sentence."""


# ---- atomic writes -------------------------------------------------------------------------
def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` all-or-nothing. Raises ExportError (the temporary file is removed)."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # 0o666 & ~umask, like open()
    except OSError as error:
        raise ExportError(f"cannot write into '{path.parent}': {reason(error)}") from None
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]  # os.write may write less than asked
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except OSError as error:
        temp.unlink(missing_ok=True)
        raise ExportError(f"cannot write '{path}': {reason(error)}") from None
    sync_directory(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def reason(error: OSError) -> str:
    if error.errno == errno.ENOSPC:
        return "the disk is full"
    return error.strerror or str(error)


def sync_directory(folder: Path) -> None:
    """Make the rename durable where the platform allows it (not on Windows; errors are harmless)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---- names ---------------------------------------------------------------------------------
def safe_export_path(export_dir: str | Path, name: str) -> Path:
    """export_dir / name, refusing names that would land outside export_dir. Raises ExportError.

    Refused: empty names, absolute paths, any ".." part, and names whose resolved location (symlinks
    followed) is not inside the resolved export folder.
    """
    folder = Path(export_dir).expanduser().resolve()
    candidate = Path(name)
    if not name or name in (".",) or candidate.is_absolute() or ".." in candidate.parts:
        raise ExportError(f"export name '{name}' must be a plain file name inside the export folder")
    target = folder / candidate
    if not target.resolve().is_relative_to(folder) or target.resolve() == folder:
        raise ExportError(f"export name '{name}' points outside the export folder '{folder}'")
    return target


def timestamped_name(stem: str, ext: str, now: datetime) -> str:
    """e.g. "attention-20250131-142501-123.json" (milliseconds keep quick repeats apart)."""
    return f"{stem}-{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}.{ext.lstrip('.')}"


def unused_path(export_dir: Path, name: str) -> Path:
    """safe_export_path, with "-2", "-3"... added before the extension when the name is taken."""
    path = safe_export_path(export_dir, name)
    stem, dot, ext = name.rpartition(".")
    n = 2
    while path.exists():
        path = safe_export_path(export_dir, f"{stem}-{n}{dot}{ext}")
        n += 1
    return path


# ---- contents ------------------------------------------------------------------------------
def check_matrix(matrix: np.ndarray, tokens: Sequence[str]) -> np.ndarray:  # [T, T] -> [T, T] float
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(tokens):
        raise ValueError(f"attention must be [T, T] with one token per row (got {matrix.shape} for {len(tokens)} tokens)")
    return matrix


def attention_json(matrix: np.ndarray, tokens: Sequence[str], layer: int, head: int | None) -> dict:  # [T, T]
    """The matrix with its tokens; head None means the mean over heads. Row i is token i's attention."""
    matrix = check_matrix(matrix, tokens)
    return {
        "layer": layer,
        "head": "mean" if head is None else head,
        "tokens": list(tokens),
        "shape": list(matrix.shape),
        "rows": "query token (the one attending)",
        "columns": "key token (the one attended to)",
        "attention": np.round(matrix, 6).tolist(),
    }


def attention_text_heatmap(matrix: np.ndarray, tokens: Sequence[str], width: int = 80) -> str:  # [T, T]
    """Shade-character heatmap: one row per token, columns averaged in bins to fit `width` characters."""
    matrix = check_matrix(matrix, tokens)
    T = matrix.shape[0]
    columns = max(1, min(T, width - LABEL_WIDTH - 7))  # 7 = "NNNN " index and the two "|"
    bins = np.array_split(np.arange(T), columns) if T else []
    binned = np.stack([matrix[:, b].mean(axis=1) for b in bins], axis=1) if T else matrix  # [T, columns]
    top = float(binned.max()) if binned.size else 0.0
    levels = np.zeros_like(binned, dtype=int) if top <= 0 else np.rint(binned / top * (len(SHADES) - 1)).astype(int)
    per_column = "1 token" if columns == T else f"~{T / columns:.1f} tokens (averaged)"
    lines = [f"rows: query token, columns: key token ({per_column} per column); █ = {top:.3f}"]
    for i in range(T):
        label = visible(tokens[i], **TOKEN_MARKERS)
        label = (label[: LABEL_WIDTH - 1] + "…") if len(label) > LABEL_WIDTH else label.ljust(LABEL_WIDTH)
        lines.append(f"{i:>4} {label}|" + "".join(SHADES[v] for v in levels[i]) + "|")
    return "\n".join(lines)


def candidates_table(candidates: Sequence[Candidate], bar_width: int = 20) -> str:
    """Rank, id, text, probability before and after temperature/top-k/top-p, and a bar of p."""
    lines = [f"{'#':>2}  {'id':>7}  {'token':<16}{'p_raw':>8}{'p':>8}  "]
    for rank, c in enumerate(candidates, start=1):
        text = visible(c.text, **TOKEN_MARKERS)
        text = (text[:15] + "…") if len(text) > 16 else text
        bar = "█" * int(round(c.p * bar_width))
        lines.append(f"{rank:>2}  {c.token_id:>7}  {text:<16}{c.p_raw:>8.4f}{c.p:>8.4f}  {bar}")
    return "\n".join(lines)


def trace_text(trace_lines: Sequence[dict | str]) -> str:
    """JSON lines: dicts are serialised, strings are taken as already-serialised lines."""
    return "".join((line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)).rstrip("\n") + "\n" for line in trace_lines)


# ---- the `e` key ---------------------------------------------------------------------------
def export_bundle(
    export_dir: str | Path,
    *,
    svg: str | None,
    attention: np.ndarray | None = None,  # [T, T] for the chosen layer and head
    tokens: Sequence[str] = (),
    layer: int = 0,
    head: int | None = None,
    candidates: Sequence[Candidate] | None = None,
    trace_lines: Sequence[dict | str] | None = None,
    data: dict[str, object] | None = None,  # stem -> JSON-serialisable figures of a screen (block lab, compare, …)
    now: datetime | None = None,
) -> list[Path]:
    """Write every given part into export_dir with one shared timestamp; return the paths written.

    Parts that are None are skipped. Raises ExportError (files already written stay; none is partial).
    """
    folder = Path(export_dir).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ExportError(f"cannot create the export folder '{folder}': {reason(error)}") from None
    now = now or datetime.now()
    parts: list[tuple[str, str, str]] = []  # (stem, extension, text)
    if svg is not None:
        parts.append(("screen", "svg", svg))
    if attention is not None:
        head_label = "mean" if head is None else f"h{head}"
        stem = f"attention-l{layer}-{head_label}"
        parts.append((stem, "json", json.dumps(attention_json(attention, tokens, layer, head), ensure_ascii=False)))
        title = f"attention, layer {layer}, head {'mean' if head is None else head}\n"
        parts.append((stem, "txt", title + attention_text_heatmap(attention, tokens) + "\n"))
    if candidates is not None:
        parts.append(("candidates", "txt", candidates_table(candidates) + "\n"))
    if trace_lines is not None:
        parts.append(("trace", "jsonl", trace_text(trace_lines)))
    for stem, value in (data or {}).items():
        parts.append((stem, "json", json.dumps(value, ensure_ascii=False, indent=1)))
    return [atomic_write_text(unused_path(folder, timestamped_name(stem, ext, now)), text) for stem, ext, text in parts]
