"""Chunks and their vectors: lookups, and the id and vector matrices indexes are built from."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import NotFound
from app.store.collections import Collections
from app.store.connection import vector_matrix
from app.store.records import Chunk

_CHUNK = 'id, document_id, collection_id, seq, text, section, "start", "end", token_count'


@dataclass(frozen=True)
class Changes:
    """What changed in a collection between two versions: removed chunk ids, added chunks."""

    removed: np.ndarray
    ids: np.ndarray
    vectors: np.ndarray


class Chunks(Collections):
    """Reading stored chunks and vectors (they are written with their document)."""

    def get_chunks(self, document_id: int) -> list[Chunk]:
        """A document's chunks in order."""
        rows = self._rows(
            f"SELECT {_CHUNK} FROM chunks WHERE document_id = ? ORDER BY seq", [document_id]
        )
        return [Chunk(**row) for row in rows]

    def get_chunk(self, chunk_id: int) -> Chunk:
        """One chunk; NotFound if there is none."""
        rows = self._rows(f"SELECT {_CHUNK} FROM chunks WHERE id = ?", [chunk_id])
        if not rows:
            raise NotFound(f"No chunk with id {chunk_id}.")
        return Chunk(**rows[0])

    def get_chunks_by_id(self, chunk_ids: Iterable[int]) -> dict[int, Chunk]:
        """The chunks with these ids (missing ids are left out), keyed by id."""
        rows = self._rows(
            f"SELECT {_CHUNK} FROM chunks WHERE {self.dialect.in_ids('id')}",
            [self.dialect.id_list(chunk_ids)],
        )
        return {row["id"]: Chunk(**row) for row in rows}

    def chunk_documents(self, chunk_ids: Iterable[int]) -> dict[int, int]:
        """The document id of each of these chunks (missing chunks are left out)."""
        rows = self._tuples(
            f"SELECT id, document_id FROM chunks WHERE {self.dialect.in_ids('id')}",
            [self.dialect.id_list(chunk_ids)],
        )
        return dict(rows)

    def document_chunk_ids(self, document_ids: Iterable[int]) -> list[int]:
        """Ids of every chunk of these documents."""
        rows = self._rows(
            f"SELECT id FROM chunks WHERE {self.dialect.in_ids('document_id')}",
            [self.dialect.id_list(document_ids)],
        )
        return [row["id"] for row in rows]

    def chunk_ids(self, collection_id: int) -> np.ndarray:
        """Every chunk id in the collection, ascending, as int64."""
        rows = self._tuples(
            "SELECT id FROM chunks WHERE collection_id = ? ORDER BY id", [collection_id]
        )
        return np.array([row[0] for row in rows], dtype=np.int64)

    def chunk_vectors(
        self, collection_id: int, ids: Iterable[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Stored chunk ids (int64) and their vectors (float32 rows), for index rebuilds."""
        dimensions = self.collection_dimensions(collection_id)
        sql = "SELECT id, vector FROM chunks WHERE collection_id = ?"
        params: list[Any] = [collection_id]
        if ids is not None:
            sql += f" AND {self.dialect.in_ids('id')}"
            params.append(self.dialect.id_list(ids))
        return vector_matrix(self._tuples(sql + " ORDER BY id", params), dimensions)

    def document_chunk_vectors(self, collection_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Each chunk's document id (int64) and vector (float32 rows), for document vectors."""
        dimensions = self.collection_dimensions(collection_id)
        rows = self._tuples(
            "SELECT document_id, vector FROM chunks WHERE collection_id = ?", [collection_id]
        )
        return vector_matrix(rows, dimensions)

    def changes(self, collection_id: int, since: int, until: int) -> Changes | None:
        """Chunks removed and added after version ``since`` up to ``until``; None when removals
        that old were pruned (the caller compares every id instead)."""
        pruned = self._tuples("SELECT removals_from FROM collections WHERE id = ?", [collection_id])
        if not pruned or pruned[0][0] > since:
            return None
        window = "collection_id = ? AND version > ? AND version <= ?"
        removed = self._tuples(
            f"SELECT chunk_id FROM chunk_removals WHERE {window}", [collection_id, since, until]
        )
        dimensions = self.collection_dimensions(collection_id)
        ids, vectors = vector_matrix(
            self._tuples(
                f"SELECT id, vector FROM chunks WHERE {window} ORDER BY id",
                [collection_id, since, until],
            ),
            dimensions,
        )
        return Changes(np.array([r[0] for r in removed], dtype=np.int64), ids, vectors)

    def prune_removals(self, older_than_seconds: float) -> int:
        """Forget chunk removals older than this; returns how many. An index older than what
        is left is brought up to date by comparing every id instead."""
        cutoff = time.time() - older_than_seconds
        with self._transaction() as conn:
            newest = conn.execute(
                "SELECT collection_id, max(version) FROM chunk_removals WHERE removed_at < ? "
                "GROUP BY collection_id",
                [cutoff],
            ).fetchall()
            for collection_id, version in newest:
                conn.execute(
                    "UPDATE collections SET removals_from = ? WHERE id = ? AND removals_from < ?",
                    [version, collection_id, version],
                )
            return conn.execute(
                "DELETE FROM chunk_removals WHERE removed_at < ?", [cutoff]
            ).rowcount
