"""The store's database (SQLite or PostgreSQL, by URL), its transactions and its reads."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from app.errors import ServiceUnavailable
from app.store.dialect import Conn, open_dialect
from app.store.migrations import migrate


class Connection:
    """A database safe to share between threads; the base of every store part."""

    def __init__(self, url: str | Path | None = None, *, pool_size: int = 10) -> None:
        self.dialect = open_dialect(url, pool_size)
        migrate(self.dialect)

    @property
    def db(self) -> sqlite_utils.Database:
        """The sqlite-utils database (SQLite only: for maintenance and tests)."""
        db = getattr(self.dialect, "db", None)
        if db is None:
            raise TypeError("The store is not on SQLite.")
        return db

    def close(self) -> None:
        """Close the connection (or the pool)."""
        self.dialect.close()

    def compact(self) -> None:
        """Reclaim the space left by deleted rows."""
        self.dialect.compact()

    def ping(self) -> None:
        """One round trip to the database; raises if it does not answer."""
        self._tuples("SELECT 1")

    @contextmanager
    def _answering(self) -> Iterator[None]:
        """Turn "the database does not answer" into ServiceUnavailable (503, with the reason)."""
        try:
            yield
        except self.dialect.unavailable as exc:
            raise ServiceUnavailable(f"The database does not answer: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[Conn]:
        """One write transaction: committed on success, rolled back on any error."""
        with self._answering(), self.dialect.transaction() as conn:
            yield conn
        self._written()

    def _written(self) -> None:
        """Called after each committed write, for parts that cache what they read."""

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """All rows of a query as dicts."""
        with self._answering(), self.dialect.read() as conn:
            cursor = conn.execute(sql, list(params))
            names = [column[0] for column in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _tuples(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of a query as tuples (cheaper than dicts for many rows)."""
        with self._answering(), self.dialect.read() as conn:
            return [tuple(row) for row in conn.execute(sql, list(params)).fetchall()]


def vector_matrix(rows: list[tuple[Any, ...]], dimensions: int) -> tuple[np.ndarray, np.ndarray]:
    """(int64 ids, float32 matrix) from rows of (id, little-endian float32 vector blob)."""
    ids = np.array([row[0] for row in rows], dtype=np.int64)
    matrix = np.frombuffer(b"".join(row[1] for row in rows), dtype="<f4")
    return ids, matrix.reshape(len(rows), dimensions).astype(np.float32)
