"""`ollama:NAME[:TAG]`: a model pulled by Ollama, found in Ollama's own store.

Ollama keeps a JSON manifest per model at `<root>/manifests/<host>/<namespace>/<name>/<tag>` (host
registry.ollama.ai, namespace library, tag latest unless named) and the files it lists as
content-addressed blobs, `<root>/blobs/sha256-<hex>`. The layer with media type
`application/vnd.ollama.image.model` is the weights: a GGUF file for the models tfund can open.
The root is $OLLAMA_MODELS, else ~/.ollama/models, else the Linux service's /usr/share/ollama/.ollama/models.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from engine.store import StoreError, StoreUnavailableError
from engine.store.gguf_header import is_gguf

PREFIX = "ollama:"
MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
DEFAULT_HOST, DEFAULT_NAMESPACE, DEFAULT_TAG = "registry.ollama.ai", "library", "latest"
SERVICE_ROOT = Path("/usr/share/ollama/.ollama/models")


@dataclass(frozen=True)
class OllamaModel:
    name: str  # as the user writes it after "ollama:", with its tag: llama3.2:1b
    manifest: Path
    blob: Path  # the GGUF


def is_ollama_name(model: str) -> bool:
    return model.startswith(PREFIX)


def store_roots() -> list[Path]:
    """Where Ollama's store may be, in the order looked at: $OLLAMA_MODELS alone when it is set."""
    if configured := os.environ.get("OLLAMA_MODELS"):
        return [Path(configured).expanduser()]
    return [Path.home() / ".ollama" / "models", SERVICE_ROOT]


def store_root() -> Path | None:
    """The first root that exists (None if Ollama has no store here)."""
    return next((root for root in store_roots() if root.is_dir()), None)


def manifest_relpath(name: str) -> tuple[Path, str]:
    """NAME[:TAG] → (manifest path under <root>/manifests, the full name with its tag).
    NAME is `model`, `namespace/model` or `host/namespace/model`, as Ollama spells them."""
    base, _, tag = name.partition(":")
    parts = [part for part in base.split("/") if part]
    if not parts or len(parts) > 3 or any(part in (".", "..") for part in parts) or "/" in tag or tag in (".", ".."):
        raise StoreError(f"'{PREFIX}{name}' is not an Ollama model name; use ollama:NAME or ollama:NAME:TAG (e.g. ollama:llama3.2:1b)")
    parts = [DEFAULT_HOST, DEFAULT_NAMESPACE][: 3 - len(parts)] + parts
    tag = tag or DEFAULT_TAG
    return Path(*parts, tag), f"{base}:{tag}"


def resolve(model: str) -> OllamaModel:
    """`ollama:NAME[:TAG]` → its manifest and GGUF blob. StoreError (or StoreUnavailableError), one sentence."""
    relpath, full_name = manifest_relpath(model.removeprefix(PREFIX))
    root = store_root()
    if root is None:
        looked = " or ".join(str(path) for path in store_roots())
        raise StoreError(f"no Ollama store here (looked in {looked}); pull the model with Ollama first or set OLLAMA_MODELS")
    manifest = root / "manifests" / relpath
    try:
        document = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"Ollama has no model '{full_name}' in {root} (`ollama pull {full_name}` fetches it)") from None
    except PermissionError:
        raise StoreUnavailableError(unreadable(root)) from None
    except (OSError, ValueError) as error:
        raise StoreUnavailableError(f"the Ollama manifest '{manifest}' is not readable JSON ({error.__class__.__name__})") from None
    digest = model_digest(document)
    if digest is None:
        raise StoreError(f"Ollama's '{full_name}' has no weights layer ({MODEL_MEDIA_TYPE}); it is not a model tfund can open")
    blob = root / "blobs" / digest.replace(":", "-")
    try:
        with open(blob, "rb"):
            pass
    except FileNotFoundError:
        raise StoreUnavailableError(
            f"the manifest of '{full_name}' names the blob {blob.name}, which is missing from {blob.parent} (an interrupted pull? `ollama pull {full_name}` again)"
        ) from None
    except PermissionError:
        raise StoreUnavailableError(unreadable(root)) from None
    if not is_gguf(blob):
        raise StoreError(
            f"Ollama's '{full_name}' is not a GGUF model (its weights blob {blob.name} does not start with GGUF); tfund opens GGUF models"
        )
    return OllamaModel(name=full_name, manifest=manifest, blob=blob)


def unreadable(root: Path) -> str:
    return (
        f"cannot read Ollama's store at {root} (permission denied); the Linux service's store belongs to the 'ollama' user: "
        "join its group or point OLLAMA_MODELS at a store you can read"
    )


def model_digest(document: object) -> str | None:
    """The `sha256:HEX` digest of the manifest's weights layer, None if it has none."""
    layers = document.get("layers") if isinstance(document, dict) else None
    for layer in layers if isinstance(layers, list) else []:
        if isinstance(layer, dict) and layer.get("mediaType") == MODEL_MEDIA_TYPE:
            digest = layer.get("digest")
            if isinstance(digest, str) and digest.startswith("sha256:") and len(digest) == 71 and "/" not in digest:
                return digest
    return None


def list_models() -> list[str]:
    """Every model in the store as NAME:TAG (library models without host and namespace); [] without a
    store. StoreUnavailableError if the store cannot be read."""
    root = store_root()
    if root is None:
        return []
    manifests = root / "manifests"
    try:
        paths = sorted(path for path in manifests.rglob("*") if len(path.relative_to(manifests).parts) == 4 and path.is_file())
        os.listdir(manifests)  # rglob passes over a folder it cannot read: this says so
    except FileNotFoundError:
        return []
    except OSError:
        raise StoreUnavailableError(unreadable(root)) from None
    return [display_name(*path.relative_to(manifests).parts) for path in paths]


def display_name(host: str, namespace: str, model: str, tag: str) -> str:
    """How Ollama names a manifest: llama3.2:1b for the library's, namespace/model:tag or host/namespace/model:tag else."""
    if host == DEFAULT_HOST:
        return f"{model}:{tag}" if namespace == DEFAULT_NAMESPACE else f"{namespace}/{model}:{tag}"
    return f"{host}/{namespace}/{model}:{tag}"
