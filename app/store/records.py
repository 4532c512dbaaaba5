"""What the store hands out and takes in: collections, documents, chunks, jobs, clusterings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

JOB_STATES = ("queued", "extracting", "embedding", "done", "failed")
JOB_ENDED = ("done", "failed")  # the states a job never leaves
Scalar = str | int | float | bool | None  # a metadata value a filter can match


def now() -> str:
    """The current time as an ISO 8601 UTC string."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Collection:
    """A named set of documents embedded with one model."""

    id: int
    name: str
    model: str
    dimensions: int
    backend: str
    version: int
    created_at: str
    documents: int
    chunks: int


@dataclass(frozen=True)
class Document:
    """A stored document; ``text`` is None when it came from a listing or lookup."""

    id: int
    collection_id: int
    title: str
    source_name: str
    source_type: str
    size: int
    content_hash: str
    external_id: str | None
    metadata: dict[str, Any]
    chunk_count: int
    created_at: str
    updated_at: str
    text: str | None = None


@dataclass(frozen=True)
class ChunkRecord:
    """A chunk to store: its text and where it sits in the document text."""

    seq: int
    text: str
    start: int
    end: int
    token_count: int
    section: str | None = None


@dataclass(frozen=True)
class Chunk:
    """A stored chunk; its id is also its id in the vector index."""

    id: int
    document_id: int
    collection_id: int
    seq: int
    text: str
    section: str | None
    start: int
    end: int
    token_count: int


@dataclass(frozen=True)
class AddResult:
    """What ``add_document`` changed: the index must add ``chunk_ids`` and drop ``removed_ids``."""

    document_id: int
    chunk_ids: list[int]
    removed_ids: list[int]
    replaced: bool = False  # an existing document (same id or external id) was replaced


@dataclass(frozen=True)
class Job:
    """A background ingestion job and its progress."""

    id: str
    collection: str
    state: str
    total: int
    done: int
    error: str | None
    result: dict[str, Any] | None
    created_at: str
    updated_at: str
    worker: str | None = None  # the replica running it (or that ran it)
    attempts: int = 0  # times a worker claimed it: more than one after a replica died
    lease_until: float | None = None  # when another worker may take it over (Unix time)


@dataclass(frozen=True)
class StoredClustering:
    """A collection's latest clustering: the JSON result and the version it was computed from."""

    collection_id: int
    version: int
    result: dict[str, Any]
    created_at: str


@dataclass(frozen=True)
class StoredMap:
    """A cached 2D map: one (x, y) row per document id, valid for one collection version."""

    version: int
    method: str
    document_ids: np.ndarray
    coordinates: np.ndarray
