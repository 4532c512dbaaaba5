"""The index backend chosen by ``EMBEDSEARCH_INDEX_BACKEND``."""

from __future__ import annotations

from app.index.faiss import FaissFiles
from app.index.indexes import Indexes
from app.settings import Settings
from app.store.database import Store


def open_indexes(settings: Settings, store: Store) -> Indexes:
    """The collections' vector indexes on the configured backend."""
    backend = FaissFiles(
        settings.data_dir / "indexes",
        exact_max=settings.index_exact_max,
        nprobe=settings.index_nprobe,
    )
    return Indexes(store, backend, follow_seconds=settings.index_follow_seconds)
