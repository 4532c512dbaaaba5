"""The app factory: ``create_app(settings)`` builds a FastAPI app; nothing heavy at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import faiss
from fastapi import FastAPI

from app.api import clusters, documents, embeddings, errors, health, search, sync
from app.api.middleware import (
    BodyLimit,
    JsonBody,
    LeanRoutes,
    RequestMetrics,
    SameOrigin,
    SecurityHeaders,
)
from app.embeddings.backends import load_encoder
from app.embeddings.encoder import Encoder
from app.embeddings.engine import Engine, Limits
from app.embeddings.models import ModelRegistry, ModelSpec, bundled_minilm, openai_aliases
from app.embeddings.queue import Priority
from app.errors import AppError
from app.index.factory import open_indexes
from app.index.indexes import Indexes
from app.ingest.embedder import Embedder, LocalEmbedder, RemoteEmbedder
from app.ingest.jobs import Ingestor
from app.ingest.worker import JobWorker
from app.metrics import Metrics
from app.settings import Settings, get_settings
from app.store.database import Store
from app.store.owner import Owner
from app.web import install as install_web
from app.web import not_found_page

log = logging.getLogger("embedsearch")

Loader = Callable[[ModelSpec], Encoder]


def build_engine(settings: Settings, metrics: Metrics, load: Loader | None = None) -> Engine:
    """The embeddings engine for these settings (``load`` swaps the model, for tests)."""
    specs = [bundled_minilm()]
    # Fails fast on a default model that is not served; the OpenAI names go to its canonical id.
    default = ModelRegistry(specs, settings.model_aliases).resolve(settings.model).id
    builtin = openai_aliases(default) if settings.openai_aliases else {}
    registry = ModelRegistry(specs, {**builtin, **settings.model_aliases})
    return Engine(
        registry,
        load
        or partial(
            load_encoder,
            backend=settings.backend,
            models_dir=settings.models_dir or settings.data_dir / "models",
            threads=settings.model_threads,
            float_layers=settings.int8_float_layers,
        ),
        limits=Limits(
            max_inputs=settings.max_inputs_per_request,
            max_tokens=settings.max_tokens_per_request,
            truncate=settings.truncate,
            token_ids=settings.token_ids,
        ),
        batch_tokens=settings.batch_tokens,
        max_queued=settings.max_queued_inputs,
        metrics=metrics,
        nice=settings.background_nice,
    )


def database_url(settings: Settings) -> str | Path:
    """The configured database: a PostgreSQL URL, or the SQLite file in the data directory."""
    return settings.database_url or settings.data_dir / "embedsearch.db"


def open_store(settings: Settings) -> tuple[Store, Indexes]:
    """The store (SQLite or PostgreSQL) and this replica's vector indexes, which follow it."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(database_url(settings), pool_size=settings.database_pool_size)
    return store, open_indexes(settings, store)


def build_embedder(
    settings: Settings, engine: Engine, priority: Priority = Priority.SEARCH
) -> Embedder:
    """What ingestion and search embed with: a remote service if configured, else the engine
    (in the engine's queue lane for ``priority``)."""
    if settings.embeddings_url:
        return RemoteEmbedder(settings.embeddings_url, settings.embeddings_key, settings.model)
    return LocalEmbedder(engine, settings.model, priority)


def create_app(settings: Settings | None = None, load: Loader | None = None) -> FastAPI:
    """Build the app; the model loads in the background once it starts."""
    settings = settings or get_settings()
    metrics = Metrics()
    engine = build_engine(settings, metrics, load)
    owner = Owner(settings.data_dir, "embedsearch serve")  # before anything writes there
    store, indexes = open_store(settings)
    embedder = build_embedder(settings, engine)
    ingestor = Ingestor(
        store,
        indexes,
        build_embedder(settings, engine, Priority.BULK),  # behind searches and API calls
        encoder=engine.encoder,
        chunk_tokens=settings.chunk_tokens,
        chunk_overlap=settings.chunk_overlap,
        max_inputs=settings.max_inputs_per_request,
    )
    worker = JobWorker(
        store,
        ingestor,
        lease_seconds=settings.job_lease_seconds,
        poll_seconds=settings.job_poll_seconds,
        max_attempts=settings.job_max_attempts,
        removals_keep_seconds=settings.removals_keep_seconds,
        nice=settings.background_nice,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        faiss.omp_set_num_threads(1)  # one query at a time: threads only fight the model for cores
        engine.start()
        for report in indexes.sync_all():
            if report.action != "none":
                log.warning(
                    "Index of collection %d was %s from the database.",
                    report.collection_id,
                    report.action,
                )
        worker.start()  # after the indexes are in step: jobs of a replica that died resume here
        yield
        worker.stop()
        try:
            indexes.save_all()
        except AppError as exc:  # e.g. the database is gone: start-up repairs the files
            log.warning("Indexes not saved at shutdown: %s", exc.message)
        engine.stop()
        indexes.close()
        store.close()
        owner.release()

    app = FastAPI(
        title="embedsearch",
        summary="Self-hosted semantic search on an OpenAI-compatible embeddings endpoint.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served by app.web from vendored Swagger UI assets, so it works offline
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.engine = engine
    app.state.store = store
    app.state.indexes = indexes
    app.state.embedder = embedder
    app.state.ingestor = ingestor
    app.state.worker = worker
    errors.install(app, page_for_404=not_found_page)
    app.include_router(health.router)
    app.include_router(embeddings.router)
    app.include_router(documents.router)
    app.include_router(search.router)
    app.include_router(clusters.router)
    app.include_router(sync.router)
    install_web(app)
    _add_middleware(app, settings, metrics)
    return app


def create_embeddings_app(settings: Settings | None = None, load: Loader | None = None) -> FastAPI:
    """Only the embeddings API (with health, models and metrics): no database, no indexes.

    ``embedsearch serve --embeddings-only`` runs it as a stateless pool of model servers that the
    replicas' ingestion and search call through ``EMBEDSEARCH_EMBEDDINGS_URL``.
    """
    settings = settings or get_settings()
    metrics = Metrics()
    engine = build_engine(settings, metrics, load)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine.start()
        yield
        engine.stop()

    app = FastAPI(title="embedsearch embeddings", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.engine = engine
    errors.install(app)
    app.include_router(health.router)
    app.include_router(embeddings.router)
    _add_middleware(app, settings, metrics)
    return app


def _add_middleware(app: FastAPI, settings: Settings, metrics: Metrics) -> None:
    """The hot routes' lane, body limits, request metrics and security headers, outermost last."""
    app.add_middleware(
        LeanRoutes, routes=embeddings.lean_routes(), handlers=app.exception_handlers
    )  # innermost: every other middleware's checks apply to what it serves
    app.add_middleware(JsonBody)  # inside BodyLimit: the body it reads is already bounded
    app.add_middleware(SameOrigin)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_request_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(SecurityHeaders)  # outermost: every response gets the headers
