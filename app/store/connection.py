"""The store's one connection, shared by all threads, its lock and its write transactions."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from app.store import sqlite


class Connection:
    """A database connection safe to share between threads; the base of every store part."""

    def __init__(self, path: str | Path | None = None) -> None:
        # One connection shared by all threads; the lock keeps one thread's open
        # transaction from being seen or committed by another.
        self.db = sqlite_utils.Database(sqlite.connect(path))
        self._lock = threading.RLock()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self.db.close()

    def compact(self) -> None:
        """Reclaim the space left by deleted rows."""
        with self._lock:
            self.db.execute("VACUUM")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed on success, rolled back on any error."""
        with self._lock:
            # Python only opens a transaction at the first write, so reads before it (and
            # sqlite-utils' execute(), which commits implicit ones) would fall outside it;
            # IMMEDIATE also takes the write lock now rather than failing half-way.
            self.db.conn.execute(sqlite.BEGIN)
            with self.db.conn:
                yield self.db.conn
            self._written()

    def _written(self) -> None:
        """Called after each committed write, for parts that cache what they read."""

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """All rows of a query, read under the lock."""
        with self._lock:
            return list(self.db.query(sql, list(params)))

    def _tuples(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of a query as tuples (cheaper than dicts for many rows), read under the lock."""
        with self._lock:
            return self.db.execute(sql, list(params)).fetchall()


def vector_matrix(rows: list[tuple[Any, ...]], dimensions: int) -> tuple[np.ndarray, np.ndarray]:
    """(int64 ids, float32 matrix) from rows of (id, little-endian float32 vector blob)."""
    ids = np.array([row[0] for row in rows], dtype=np.int64)
    matrix = np.frombuffer(b"".join(row[1] for row in rows), dtype="<f4")
    return ids, matrix.reshape(len(rows), dimensions).astype(np.float32)
