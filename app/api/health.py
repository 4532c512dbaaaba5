"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.auth import KeyDep
from app.errors import AppError

router = APIRouter(tags=["health"])


@router.get("/health")
def health(request: Request) -> JSONResponse:
    """Ready (200) once the model is loaded and the database answers; 503 otherwise, with why."""
    engine = request.app.state.engine
    database = _database_error(request)
    if database is not None:
        body, status = {"status": "error", "ready": False, "error": database}, 503
    elif engine.error is not None:
        body, status = {"status": "error", "ready": False, "error": str(engine.error)}, 503
    elif engine.ready.is_set():
        body, status = {"status": "ok", "ready": True}, 200
    else:
        body, status = {"status": "loading", "ready": False}, 503
    return JSONResponse(
        {**body, "models": list(engine.registry.specs), **_backend(request)}, status_code=status
    )


def _database_error(request: Request) -> str | None:
    """Why the database does not answer, or None when it does."""
    store = getattr(request.app.state, "store", None)  # none in an embeddings-only server
    try:
        if store is not None:
            store.ping()
    except AppError as exc:
        return exc.message
    return None


def _backend(request: Request) -> dict[str, str]:
    """Which runtime serves the default model, what was asked for, and why they differ if so."""
    engine = request.app.state.engine
    requested = request.app.state.settings.backend
    encoder = engine.encoders.get(engine.spec().id) if engine.ready.is_set() else None
    if encoder is None:
        return {"requested_backend": requested}
    info = {"backend": encoder.backend, "requested_backend": requested}
    if encoder.fallback:
        info["fallback"] = encoder.fallback
    return info


@router.get("/health/live")
def live() -> dict[str, str]:
    """The process is up (whether or not the model has loaded)."""
    return {"status": "ok"}


@router.get("/metrics")
def metrics(request: Request, _: KeyDep) -> Response:
    """Prometheus metrics: requests, latency, tokens, batch sizes, queue depth."""
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
