"""The store: collections, documents, chunks (with their vectors), keyword search, jobs and
clusterings in one SQLite database, behind one ``Store``.

SQLite is the source of truth; vector indexes are derived from the vectors stored here. Each
part lives in its own module; what is SQLite-specific lives in ``app.store.sqlite``.
"""

from __future__ import annotations

from app.store.chunks import Chunks
from app.store.clusterings import Clusterings
from app.store.documents import Documents
from app.store.jobs import Jobs
from app.store.keywords import Keywords


class Store(Documents, Chunks, Keywords, Jobs, Clusterings):
    """SQLite-backed storage, safe to share between threads."""
