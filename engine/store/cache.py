"""tfund's cache: `$TFUND_CACHE`, else the platform's user cache folder.

Layout: `smollm2/` holds the pinned GGUF (engine.store.smollm2); `conversions/` holds what makes a second
load fast (a tokenizer.json built from a GGUF's metadata, dequantized weights: engine.runtime.conversions),
each engine's weights only when they are at most CONVERSION_LIMIT_BYTES: a conversion of a bigger model
would cost more disk than the load it saves (SmolLM2-135M dequantized to float32 is 538 MB, 651 MB in the
NumPy engine's layout with its own copy of the unembedding; a 1B model would be 4 GB).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CONVERSION_LIMIT_BYTES = 1 << 30  # 1 GiB: SmolLM2 (538 MB of float32 weights) fits, a 1B model (4 GB) does not


def cache_dir() -> Path:
    """$TFUND_CACHE, else ~/Library/Caches/tfund (macOS), %LOCALAPPDATA%/tfund/Cache (Windows),
    $XDG_CACHE_HOME/tfund or ~/.cache/tfund (elsewhere). Not created here."""
    if configured := os.environ.get("TFUND_CACHE"):
        return Path(configured).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "tfund"
    if sys.platform == "win32" and (local := os.environ.get("LOCALAPPDATA")):
        return Path(local) / "tfund" / "Cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tfund"


def conversions_dir() -> Path:
    """Where converted files go (created by whoever writes one)."""
    return cache_dir() / "conversions"


def may_cache_conversion(n_bytes: int) -> bool:
    """Whether a conversion of this size goes into the cache (else it is rebuilt at each load)."""
    return n_bytes <= CONVERSION_LIMIT_BYTES
