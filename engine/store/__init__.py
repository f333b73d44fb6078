"""Where models come from besides a transformers directory: tfund's cache and the pinned `smollm2`,
Ollama's store, and the catalog of what can be opened (`tfund models`).

Nothing here imports torch or transformers. Every failure is a StoreError carrying one sentence.
"""


class StoreError(Exception):
    """What was asked for does not name a model that can be opened (bad usage: exit 2)."""


class StoreUnavailableError(StoreError):
    """A valid request that cannot be served here and now: offline, a failed download, a hash mismatch,
    an unreadable store (exit 1)."""
