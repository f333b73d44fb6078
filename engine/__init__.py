"""tfund engine: the from-scratch NumPy transformer (GPT-2 and the Llama family) and the step-by-step sampler.

Importing `engine` is cheap: torch and transformers load only when a model is loaded.
"""

from engine.events import Candidate, LensEntry, ModelInfo, SamplingConfig, TokenEvent

__all__ = ["Candidate", "LensEntry", "ModelInfo", "SamplingConfig", "TokenEvent", "load_model", "Sampler", "ModelLoadError"]


def __getattr__(name: str):
    if name in ("load_model", "ModelLoadError", "LoadedModel"):
        from engine.runtime import loading as models

        return getattr(models, name)
    if name in ("Sampler", "GenerationDone"):
        from engine.runtime import sampler

        return getattr(sampler, name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
