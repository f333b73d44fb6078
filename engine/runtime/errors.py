"""The errors of finding and loading a model: each carries one sentence for the user."""

from __future__ import annotations


class ModelLoadError(Exception):
    """A model could not be loaded because of what was asked for; str(error) is one sentence."""


class ModelUnavailableError(ModelLoadError):
    """A valid request that cannot be served here and now (offline, out of memory)."""


class QuantizationRefused(ModelLoadError):
    """A quantization type the model cannot be rounded to (its own type, or one not offered); one sentence."""
