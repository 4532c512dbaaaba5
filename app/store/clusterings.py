"""Clusters and maps (app.search.clusters, app.search.projection): the latest per collection."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from app.store.connection import Connection
from app.store.records import StoredClustering, StoredMap, now


class Clusterings(Connection):
    """A collection's latest clustering, its documents' clusters and its cached 2D map."""

    def document_texts(self, collection_id: int, chars: int) -> dict[int, tuple[str, str]]:
        """Each document's (title, first ``chars`` characters of text), keyed by id."""
        rows = self._tuples(
            "SELECT id, title, substr(text, 1, ?) FROM documents WHERE collection_id = ?",
            [chars, collection_id],
        )
        return {row[0]: (row[1], row[2]) for row in rows}

    def document_titles(self, collection_id: int) -> dict[int, str]:
        """Each document's title, keyed by id."""
        rows = self._tuples(
            "SELECT id, title FROM documents WHERE collection_id = ?", [collection_id]
        )
        return dict(rows)

    def save_clustering(
        self,
        collection_id: int,
        version: int,
        result: dict[str, Any],
        assignments: dict[int, int],
    ) -> StoredClustering:
        """Replace the collection's clustering (``result``) and its documents' clusters."""
        stamp = now()
        with self._transaction() as conn:
            conn.execute(
                self.dialect.save_clustering,
                (collection_id, version, json.dumps(result), stamp),
            )
            conn.execute("DELETE FROM document_clusters WHERE collection_id = ?", [collection_id])
            # Only documents that still exist: one deleted while clustering ran is skipped.
            conn.executemany(
                "INSERT INTO document_clusters (document_id, collection_id, cluster) "
                "SELECT id, collection_id, ? FROM documents WHERE id = ? AND collection_id = ?",
                [
                    (cluster, document_id, collection_id)
                    for document_id, cluster in assignments.items()
                ],
            )
        return StoredClustering(collection_id, version, result, stamp)

    def get_clustering(self, collection_id: int) -> StoredClustering | None:
        """The collection's latest clustering, or None if it was never clustered."""
        rows = self._rows("SELECT * FROM clusterings WHERE collection_id = ?", [collection_id])
        if not rows:
            return None
        return StoredClustering(**(rows[0] | {"result": json.loads(rows[0]["result"])}))

    def document_cluster(self, document_id: int) -> int | None:
        """The document's cluster in its collection's latest clustering, or None."""
        rows = self._rows(
            "SELECT cluster FROM document_clusters WHERE document_id = ?", [document_id]
        )
        return rows[0]["cluster"] if rows else None

    def document_clusters(self, collection_id: int) -> dict[int, int]:
        """Every clustered document's cluster in the collection, keyed by document id."""
        rows = self._tuples(
            "SELECT document_id, cluster FROM document_clusters WHERE collection_id = ?",
            [collection_id],
        )
        return dict(rows)

    def save_map(self, collection_id: int, stored: StoredMap) -> None:
        """Replace the collection's cached document map."""
        with self._transaction() as conn:
            conn.execute(
                self.dialect.save_map,
                (
                    collection_id,
                    stored.version,
                    stored.method,
                    stored.document_ids.astype("<i8").tobytes(),
                    stored.coordinates.astype("<f4").tobytes(),
                ),
            )

    def get_map(self, collection_id: int) -> StoredMap | None:
        """The collection's cached document map, or None."""
        rows = self._rows("SELECT * FROM document_maps WHERE collection_id = ?", [collection_id])
        if not rows:
            return None
        row = rows[0]
        coordinates = np.frombuffer(row["coordinates"], dtype="<f4").reshape(-1, 2)
        return StoredMap(
            version=row["version"],
            method=row["method"],
            document_ids=np.frombuffer(row["document_ids"], dtype="<i8").astype(np.int64),
            coordinates=coordinates.astype(np.float32),
        )
