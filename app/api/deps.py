"""Dependency aliases for routes and pages: the app's settings, engine, store, indexes, searcher.

The getters are ``async`` only because they never wait: FastAPI runs a plain ``def`` dependency
in a worker thread, two thread hops per request for an attribute read.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from pydantic import Field

from app.embeddings.engine import Engine
from app.index.indexes import Indexes
from app.ingest.embedder import Embedder
from app.search import Searcher
from app.search.query import QueryLimits
from app.settings import Settings
from app.store.database import Store


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings


async def get_engine(request: Request) -> Engine:
    """The app's embeddings engine."""
    return request.app.state.engine


async def get_store(request: Request) -> Store:
    """The app's SQLite store."""
    return request.app.state.store


async def get_indexes(request: Request) -> Indexes:
    """The app's vector indexes."""
    return request.app.state.indexes


async def get_embedder(request: Request) -> Embedder:
    """What the app embeds queries with (the same model ingestion used)."""
    return request.app.state.embedder


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
StoreDep = Annotated[Store, Depends(get_store)]
IndexesDep = Annotated[Indexes, Depends(get_indexes)]
EmbedderDep = Annotated[Embedder, Depends(get_embedder)]


async def get_searcher(
    store: StoreDep, indexes: IndexesDep, embedder: EmbedderDep, settings: SettingsDep
) -> Searcher:
    """A searcher over the app's store, indexes and embedder, within the settings' limits."""
    return Searcher(store, indexes, embedder, QueryLimits.of(settings))


SearcherDep = Annotated[Searcher, Depends(get_searcher)]

# SQLite integers are signed 64-bit: a larger id can name nothing, and must not reach the driver.
SQLITE_MAX_INT = 2**63 - 1
RowId = Annotated[int, Field(ge=1, le=SQLITE_MAX_INT)]
DocumentId = Annotated[int, Path(ge=1, le=SQLITE_MAX_INT, description="A document id.")]
ChunkId = Annotated[int, Path(ge=1, le=SQLITE_MAX_INT, description="A chunk id.")]
