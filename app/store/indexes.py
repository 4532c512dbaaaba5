"""One vector index per collection, kept in step with the chunks stored in the database.

Each replica keeps its own index files and follows the database: before a search (and a save)
it compares the index's collection version with the database's change counter and applies only
the chunks added and removed since (``Store.changes``), or compares every id when the removals
it missed were pruned. So a search sees every write committed before it began, on any replica;
``follow_seconds`` > 0 trades that for fewer version checks (a replica is then at most that
many seconds behind).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from app.store.database import Store
from app.store.index import EXACT_MAX, NPROBE, FaissIndex, IndexFileError

log = logging.getLogger("embedsearch.index")


@dataclass(frozen=True)
class Report:
    """How a collection's index compared with SQLite, and what was done about it.

    ``file`` is "ok" (loaded or already in memory), "missing" or "unreadable";
    ``missing`` counts chunk ids the index lacks, ``extra`` ids SQLite no longer has;
    ``action`` is "none", "updated" or "rebuilt".
    """

    collection_id: int
    file: str
    index_version: int | None
    store_version: int
    missing: int
    extra: int
    action: str = "none"

    @property
    def ok(self) -> bool:
        """Whether the index matched SQLite exactly."""
        return (
            self.file == "ok"
            and self.index_version == self.store_version
            and not self.missing
            and not self.extra
        )


class Indexes:
    """The vector indexes of all collections, loaded lazily and repaired from stored vectors."""

    def __init__(
        self,
        store: Store,
        directory: Path | None = None,
        *,
        exact_max: int = EXACT_MAX,
        nprobe: int = NPROBE,
        follow_seconds: float = 0.0,
    ) -> None:
        self.store = store
        self.follow_seconds = follow_seconds
        self._followed: dict[int, float] = {}  # collection id -> when it last followed
        # Past exact_max vectors an index turns approximate (IVF), searched with nprobe lists.
        self.options = {"exact_max": exact_max, "nprobe": nprobe}
        # None keeps indexes in memory only (tests); they are rebuilt from SQLite on first use.
        self.directory = directory
        self._indexes: dict[int, FaissIndex] = {}
        self._locks: dict[int, threading.RLock] = {}
        self._locks_lock = threading.Lock()

    def path(self, collection_id: int) -> Path | None:
        """Where the collection's index file lives (None when in memory only)."""
        return None if self.directory is None else self.directory / f"{collection_id}.faiss"

    def add(self, collection_id: int, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (or replace) vectors under these chunk ids."""
        with self._lock(collection_id):
            self._get(collection_id).add(ids, vectors)

    def remove(self, collection_id: int, ids: np.ndarray) -> int:
        """Remove these chunk ids; returns how many were present."""
        with self._lock(collection_id):
            return self._get(collection_id).remove(ids)

    def search(
        self, collection_id: int, queries: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest chunks per query as (scores, ids), best first, -1 ids past the end."""
        with self._lock(collection_id):
            if time.monotonic() - self._followed.get(collection_id, -1e9) >= self.follow_seconds:
                self.follow(collection_id)
            return self._get(collection_id).search(queries, k)

    def follow(self, collection_id: int) -> str:
        """Bring the index up to the database's version by the changes since its own; returns
        "none", "followed" or "repaired" (every id compared: removals it missed were pruned)."""
        with self._lock(collection_id):
            index = self._get(collection_id)
            self._followed[collection_id] = time.monotonic()
            version = self.store.collection_version(collection_id)
            if index.version == version:
                return "none"
            changes = (
                None
                if index.version is None
                else self.store.changes(collection_id, index.version, version)
            )
            if changes is None:
                self.repair(collection_id)
                return "repaired"
            index.remove(changes.removed)
            index.add(changes.ids, changes.vectors)
            index.version = version
            return "followed"

    def save(self, collection_id: int) -> None:
        """Follow the database, then persist the collection's index."""
        with self._lock(collection_id):
            self.follow(collection_id)
            self._persist(collection_id, self._get(collection_id))

    def check(self, collection_id: int) -> Report:
        """Compare the index (in memory, else on disk) with SQLite without changing either."""
        with self._lock(collection_id):
            return self._compare(collection_id, *self._current(collection_id))[0]

    def repair(self, collection_id: int) -> Report:
        """Bring the index up to date from stored vectors (rebuilding it if unreadable) and save."""
        with self._lock(collection_id):
            index, file = self._current(collection_id)
            report, missing, extra = self._compare(collection_id, index, file)
            if index is None:
                return self._rebuild(report)
            self._indexes[collection_id] = index
            if report.ok:
                return report
            index.remove(extra)
            index.add(*self.store.chunk_vectors(collection_id, missing))
            index.version = report.store_version
            self._persist(collection_id, index)
            return replace(report, action="updated")

    def rebuild(self, collection_id: int) -> Report:
        """Rebuild the index from stored vectors, whatever state it is in, and save it."""
        with self._lock(collection_id):
            return self._rebuild(self._compare(collection_id, *self._current(collection_id))[0])

    def sync_all(self) -> list[Report]:
        """Repair every collection's index (at start-up)."""
        return [self.repair(collection.id) for collection in self.store.list_collections()]

    def _lock(self, collection_id: int) -> threading.RLock:
        """The lock serialising work on one collection's index."""
        with self._locks_lock:
            return self._locks.setdefault(collection_id, threading.RLock())

    def _get(self, collection_id: int) -> FaissIndex:
        """The collection's index, loaded and repaired on first use."""
        if collection_id not in self._indexes:
            path = self.path(collection_id)
            if path is None or not path.exists():
                # A collection created since start-up has no file yet: start empty and let
                # repair fill it, without the lost-file warning (sync_all gives that).
                dimensions = self.store.get_collection_by_id(collection_id).dimensions
                self._indexes[collection_id] = FaissIndex(dimensions, **self.options)
            self.repair(collection_id)
        return self._indexes[collection_id]

    def _current(self, collection_id: int) -> tuple[FaissIndex | None, str]:
        """The index in memory, else the one on disk, with the file's state."""
        if collection_id in self._indexes:
            return self._indexes[collection_id], "ok"
        path = self.path(collection_id)
        if path is None or not path.exists():
            return None, "missing"
        try:
            index = FaissIndex.load(path, **self.options)
        except IndexFileError:
            return None, "unreadable"
        # A file from another collection or model is as useless as a corrupt one.
        if index.dimensions != self.store.get_collection_by_id(collection_id).dimensions:
            return None, "unreadable"
        return index, "ok"

    def _compare(
        self, collection_id: int, index: FaissIndex | None, file: str
    ) -> tuple[Report, np.ndarray, np.ndarray]:
        """How ``index`` differs from SQLite: a report, the missing ids and the extra ids."""
        # Version first: if a write lands between the two reads, the index looks stale
        # (repaired for nothing) rather than up to date when it is not.
        store_version = self.store.get_collection_by_id(collection_id).version
        stored_ids = self.store.chunk_ids(collection_id)
        index_ids = np.empty(0, np.int64) if index is None else index.ids()
        missing = np.setdiff1d(stored_ids, index_ids)
        extra = np.setdiff1d(index_ids, stored_ids)
        report = Report(
            collection_id=collection_id,
            file=file,
            index_version=None if index is None else index.version,
            store_version=store_version,
            missing=len(missing),
            extra=len(extra),
        )
        return report, missing, extra

    def _rebuild(self, report: Report) -> Report:
        """Replace the index with one built from stored vectors, save it and report."""
        collection = self.store.get_collection_by_id(report.collection_id)
        index = FaissIndex(collection.dimensions, version=report.store_version, **self.options)
        index.add(*self.store.chunk_vectors(collection.id))
        lost = report.file == "unreadable" or (report.file == "missing" and report.missing)
        if lost and self.directory is not None:
            log.warning(
                "Index file %s for collection %r was %s; rebuilt %d vectors from SQLite",
                self.path(collection.id),
                collection.name,
                report.file,
                len(index),
            )
        self._indexes[collection.id] = index
        self._persist(collection.id, index)
        return replace(report, action="rebuilt")

    def _persist(self, collection_id: int, index: FaissIndex) -> None:
        """Save the index if this instance keeps files."""
        path = self.path(collection_id)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            index.save(path)
