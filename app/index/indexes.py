"""One vector index per collection, kept in step with the chunks stored in the database.

This is the one place that decides when an index follows the store, whichever backend keeps the
indexes: on first use, at start-up, on ``verify --repair``, and before every search and save.
Each replica keeps its own indexes and follows the database by its change counter: it compares
the index's collection version with the database's and applies only the chunks added and removed
since (``Store.changes``), or compares every id when the removals it missed were pruned. So a
search sees every write committed before it began, on any replica; ``follow_seconds`` > 0 trades
that for fewer version checks (a replica then answers at most that many seconds behind).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from app.errors import IndexUnavailable
from app.index.base import Backend, IndexLost, Ranking, RanksText, Report, VectorIndex
from app.settings import DEFAULTS
from app.store.database import Store

if TYPE_CHECKING:
    from app.store.filters import Filters

log = logging.getLogger("embedsearch.index")


class Indexes:
    """The vector indexes of all collections, opened lazily and repaired from stored vectors."""

    def __init__(
        self,
        store: Store,
        backend: Backend,
        *,
        follow_seconds: float = DEFAULTS.index_follow_seconds,
    ) -> None:
        self.store = store
        self.backend = backend
        self.follow_seconds = follow_seconds
        self._followed: dict[int, float] = {}  # collection id -> when it last followed
        self._indexes: dict[int, VectorIndex] = {}
        self._locks: dict[int, threading.RLock] = {}
        self._save_locks: dict[int, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def add(self, collection_id: int, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (or replace) vectors under these chunk ids (caught up later if the index is down)."""
        with self._lock(collection_id), self._catching_up(collection_id):
            self._get(collection_id).add(ids, vectors)

    def remove(self, collection_id: int, ids: np.ndarray) -> int:
        """Remove these chunk ids; returns how many were present (0 if the index is down: it
        catches up later)."""
        removed = 0
        with self._lock(collection_id), self._catching_up(collection_id):
            removed = self._get(collection_id).remove(ids)
        return removed

    def search(
        self, collection_id: int, queries: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest chunks per query as (scores, ids), best first, -1 ids past the end."""
        with self._lock(collection_id), self._forgetting(collection_id):
            self._follow_if_due(collection_id)
            return self._get(collection_id).search(queries, k)

    @property
    def ranks_text(self) -> bool:
        """Whether the backend ranks keyword candidates itself (else SQLite FTS5 does)."""
        return isinstance(self.backend, RanksText)

    def candidates(
        self,
        collection_id: int,
        vector: np.ndarray | None,
        text: str | None,
        filters: Filters,
        depth: int,
    ) -> tuple[Ranking, Ranking]:
        """The semantic and keyword candidates under a filter, from a backend that ranks text."""
        if not isinstance(self.backend, RanksText):
            raise TypeError(f"The {self.backend.name} backend does not rank text.")
        with self._lock(collection_id), self._forgetting(collection_id):
            self._follow_if_due(collection_id)
            index = self._get(collection_id)
            return self.backend.candidates(index, vector, text, filters, depth)

    def _follow_if_due(self, collection_id: int) -> None:
        """Follow the database unless it was done less than ``follow_seconds`` ago."""
        if time.monotonic() - self._followed.get(collection_id, -1e9) >= self.follow_seconds:
            self.follow(collection_id)

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
        """Follow the database, then make the collection's index durable.

        The index is copied under its lock and written outside it, so searches do not wait for
        the disk (at 5,711 vectors: writing and fsync 22-33 ms, copying 2-8 ms); saves of one
        collection take turns, so an older copy never replaces a newer one.
        """
        with self._saving(collection_id), self._catching_up(collection_id):
            with self._lock(collection_id):
                self.follow(collection_id)
                collection = self.store.get_collection_by_id(collection_id)
                snapshot = self.backend.snapshot(self._get(collection_id))
            self.backend.save(collection, snapshot)

    def save_all(self) -> None:
        """Follow and save every index opened so far (at shutdown: a restart starts in step)."""
        for collection_id in list(self._indexes):
            self.save(collection_id)

    def check(self, collection_id: int) -> Report:
        """Compare the index (in memory, else as saved) with SQLite without changing either."""
        with self._lock(collection_id):
            return self._compare(collection_id, *self._current(collection_id))[0]

    def repair(self, collection_id: int) -> Report:
        """Bring the index up to date from stored vectors (rebuilding it if unreadable) and save."""
        with self._lock(collection_id):
            index, state = self._current(collection_id)
            report, missing, extra = self._compare(collection_id, index, state)
            if index is None:
                return self._rebuild(report)
            self._indexes[collection_id] = index
            if report.ok:
                return report
            index.remove(extra)
            index.add(*self.store.chunk_vectors(collection_id, missing))
            index.version = report.store_version
            self.backend.save(self.store.get_collection_by_id(collection_id), index)
            return replace(report, action="updated")

    def rebuild(self, collection_id: int) -> Report:
        """Rebuild the index from stored vectors, whatever state it is in, and save it."""
        with self._lock(collection_id):
            return self._rebuild(self._compare(collection_id, *self._current(collection_id))[0])

    def sync_all(self) -> list[Report]:
        """Repair every collection's index (at start-up); one that is unreachable is left to
        catch up on first use."""
        reports = []
        for collection in self.store.list_collections():
            try:
                reports.append(self.repair(collection.id))
            except IndexUnavailable as error:
                log.warning("Index of collection %r not checked: %s", collection.name, error)
        return reports

    def close(self) -> None:
        """Release the backend (its connections or an embedded store's lock)."""
        self.backend.close()

    @contextmanager
    def _forgetting(self, collection_id: int) -> Iterator[None]:
        """On IndexUnavailable, forget the index so its next use reopens and repairs it."""
        try:
            yield
        except IndexUnavailable:
            self._indexes.pop(collection_id, None)
            raise

    @contextmanager
    def _catching_up(self, collection_id: int) -> Iterator[None]:
        """A write the index missed while unavailable: the database has it, and the index
        catches up from it when next used, so the caller's work goes on."""
        try:
            with self._forgetting(collection_id):
                yield
        except IndexUnavailable as error:
            log.warning(
                "Index of collection %d behind the database until it is back: %s",
                collection_id,
                error,
            )

    def _lock(self, collection_id: int) -> threading.RLock:
        """The lock serialising work on one collection's index."""
        with self._locks_lock:
            return self._locks.setdefault(collection_id, threading.RLock())

    def _saving(self, collection_id: int) -> threading.Lock:
        """The lock that makes one collection's saves take turns."""
        with self._locks_lock:
            return self._save_locks.setdefault(collection_id, threading.Lock())

    def _get(self, collection_id: int) -> VectorIndex:
        """The collection's index, opened and repaired on first use."""
        if collection_id not in self._indexes:
            index, state = self._current(collection_id)
            if index is None and state == "missing":
                # A collection created since start-up has no index yet: start empty and let
                # repair fill it, without the lost-index warning (sync_all gives that).
                collection = self.store.get_collection_by_id(collection_id)
                index = self.backend.create(collection)
            if index is not None:
                self._indexes[collection_id] = index
            self.repair(collection_id)
        return self._indexes[collection_id]

    def _current(self, collection_id: int) -> tuple[VectorIndex | None, str]:
        """The index in memory, else the saved one, with its state."""
        if collection_id in self._indexes:
            return self._indexes[collection_id], "ok"
        try:
            return self.backend.open(self.store.get_collection_by_id(collection_id)), "ok"
        except IndexLost as lost:
            return None, lost.state

    def _compare(
        self, collection_id: int, index: VectorIndex | None, state: str
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
            state=state,
            index_version=None if index is None else index.version,
            store_version=store_version,
            missing=len(missing),
            extra=len(extra),
        )
        return report, missing, extra

    def _rebuild(self, report: Report) -> Report:
        """Replace the index with one built from stored vectors, save it and report."""
        collection = self.store.get_collection_by_id(report.collection_id)
        index = self.backend.create(collection)
        index.add(*self.store.chunk_vectors(collection.id))
        index.version = report.store_version
        lost = report.state == "unreadable" or (report.state == "missing" and report.missing)
        if lost:
            log.warning(
                "Index %s for collection %r was %s; rebuilt %d vectors from SQLite",
                self.backend.describe(collection.id),
                collection.name,
                report.state,
                len(index),
            )
        self._indexes[collection.id] = index
        self.backend.save(collection, index)
        return replace(report, action="rebuilt")
