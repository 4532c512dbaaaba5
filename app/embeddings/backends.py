"""The backends that run the bundled model, one loader each, and the fall-back to torch."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from app.embeddings.encoder import Encoder
from app.embeddings.guard import GUARD_MIN_COSINE, GUARD_WORST_COSINE
from app.embeddings.models import ModelSpec
from app.embeddings.onnx import OnnxEncoder
from app.embeddings.onnx_build import FLOAT_FFN_LAYERS, ModelCache
from app.embeddings.torch_encoder import SentenceTransformerEncoder

log = logging.getLogger("embedsearch.onnx")


class BackendUnavailable(Exception):
    """A backend cannot serve this model; the message says why (shown in the log and /health)."""


def load_torch(spec: ModelSpec, backend: str, cache: ModelCache, threads: int) -> Encoder:
    """The model on torch, as sentence-transformers runs it."""
    return SentenceTransformerEncoder(spec, threads=threads)


def load_onnx(spec: ModelSpec, backend: str, cache: ModelCache, threads: int) -> Encoder:
    """The model's cached (or newly built) ONNX build, if it passed the quality guard."""
    build = cache.get(spec, backend)
    if not build.passed:
        raise BackendUnavailable(
            f"quality guard failed: mean cosine {build.guard['mean_cosine']:.4f} to torch, "
            f"worst text {build.guard.get('min_cosine', float('nan')):.4f}; it needs at least "
            f"{GUARD_MIN_COSINE} and {GUARD_WORST_COSINE}"
        )
    log.info(
        "Model %s on %s (guard mean cosine %.4f)", spec.id, backend, build.guard["mean_cosine"]
    )
    return OnnxEncoder(spec, build.path, threads=threads, backend=backend)


Loader = Callable[[ModelSpec, str, ModelCache, int], Encoder]
LOADERS: dict[str, Loader] = {"torch": load_torch, "onnx": load_onnx, "onnx-int8": load_onnx}
BACKENDS = tuple(LOADERS)


def compatible_backends(a: str, b: str) -> bool:
    """Whether vectors made by backends ``a`` and ``b`` may share a collection.

    torch, onnx and onnx-int8 are compatible: an ONNX backend only serves if its guard passed
    (mean cosine to torch at least GUARD_MIN_COSINE, worst text GUARD_WORST_COSINE), otherwise the server runs torch. Anything
    else (a remote service) is compatible only with itself.
    """
    return a == b or (a in BACKENDS and b in BACKENDS)


def load_encoder(
    spec: ModelSpec,
    backend: str = "torch",
    models_dir: Path | None = None,
    threads: int = 0,
    cache: ModelCache | None = None,
    float_layers: int = FLOAT_FFN_LAYERS,
) -> Encoder:
    """The encoder for ``backend``; torch (with the reason in ``fallback``) if it cannot serve.

    ``float_layers``: feed-forward output projections an int8 build keeps in fp32.
    """
    if backend not in LOADERS:
        raise ValueError(f"Unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    cache = cache or ModelCache(models_dir or Path("data/models"), threads, float_layers)
    if backend == "torch":
        return LOADERS["torch"](spec, backend, cache, threads)
    try:
        return LOADERS[backend](spec, backend, cache, threads)
    except BackendUnavailable as exc:
        reason = str(exc)
    except Exception as exc:  # a broken export must not keep the server from serving
        log.exception("Building the %s model failed", backend)
        reason = f"{backend} build failed: {exc}"
    log.warning("Backend %s not used for %s: %s; falling back to torch.", backend, spec.id, reason)
    encoder = LOADERS["torch"](spec, "torch", cache, threads)
    encoder.requested_backend = backend
    encoder.fallback = reason
    return encoder
