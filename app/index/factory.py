"""The index backend chosen by ``EMBEDSEARCH_INDEX_BACKEND``."""

from __future__ import annotations

from app.errors import ServiceUnavailable
from app.index.base import Backend
from app.index.faiss import FaissFiles
from app.index.indexes import Indexes
from app.settings import Settings
from app.store.database import Store


def open_indexes(settings: Settings, store: Store, backend: str | None = None) -> Indexes:
    """The collections' vector indexes on the configured backend (or on ``backend``)."""
    if (backend or settings.index_backend) == "qdrant":
        qdrant = qdrant_backend(settings, store)
        return Indexes(store, qdrant, follow_seconds=settings.index_follow_seconds)
    files = FaissFiles(
        settings.data_dir / "indexes",
        exact_max=settings.index_exact_max,
        nprobe=settings.index_nprobe,
    )
    return Indexes(store, files, follow_seconds=settings.index_follow_seconds)


def qdrant_backend(settings: Settings, store: Store) -> Backend:
    """The Qdrant backend on the configured server, or embedded (local mode) at a path."""
    try:  # only installations on Qdrant need the client
        from qdrant_client import QdrantClient
    except ImportError as error:
        raise ServiceUnavailable(
            "EMBEDSEARCH_INDEX_BACKEND=qdrant needs the Qdrant client: "
            "pip install 'embedsearch[qdrant]'."
        ) from error
    from app.index.qdrant import QdrantIndexes

    if settings.qdrant_url:
        client = QdrantClient(
            url=settings.qdrant_url,
            api_key=settings.qdrant_api_key,
            timeout=settings.qdrant_timeout,
        )
        where, local_mode = settings.qdrant_url, False
    elif settings.qdrant_path and settings.qdrant_edge:
        from app.index.qdrant_edge import EdgeClient

        client = EdgeClient(settings.qdrant_path)  # type: ignore[assignment]
        where, local_mode = f"{settings.qdrant_path} (embedded engine)", False
    elif settings.qdrant_path:
        settings.qdrant_path.mkdir(parents=True, exist_ok=True)
        client = QdrantClient(path=str(settings.qdrant_path))
        where, local_mode = f"{settings.qdrant_path} (local mode)", True
    else:
        raise ServiceUnavailable(
            "EMBEDSEARCH_INDEX_BACKEND=qdrant needs EMBEDSEARCH_QDRANT_URL (a server or "
            "cluster) or EMBEDSEARCH_QDRANT_PATH (an embedded store)."
        )
    return QdrantIndexes(
        client,
        store,
        where=where,
        prefix=settings.qdrant_prefix,
        shards=settings.qdrant_shards,
        replicas=settings.qdrant_replicas,
        local_mode=local_mode,
    )
