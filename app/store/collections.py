"""Collections: named sets of documents embedded with one model, and their change version."""

from __future__ import annotations

from app.errors import Conflict, NotFound
from app.store.connection import Connection
from app.store.dialect import Conn
from app.store.records import Collection, now

# The counts are kept on the collection's row by each write (``_count``): counting its documents
# on every lookup, as every search does, cost ~2 ms per 5,000 documents.
_COLLECTIONS = """
SELECT id, name, model, dimensions, backend, version, created_at, documents, chunks
FROM collections
"""


class Collections(Connection):
    """Creating, finding and listing collections."""

    def ensure_collection(self, name: str, model: str, dimensions: int, backend: str) -> Collection:
        """The collection called ``name``, created if missing; Conflict if it uses another model."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO collections (name, model, dimensions, backend, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (name, model, dimensions, backend, now()),
            )
            row = conn.execute("SELECT id FROM collections WHERE name = ?", [name]).fetchone()
            self.dialect.create_fts(conn, row[0])
        collection = self.get_collection(name)
        if (collection.model, collection.dimensions) != (model, dimensions):
            raise Conflict(
                f"Collection '{name}' holds embeddings from {collection.model} "
                f"({collection.dimensions} dimensions), not {model} ({dimensions} dimensions); "
                "a collection never mixes models. Use another collection name, or delete "
                "this collection and ingest again with the new model.",
                param="collection",
            )
        return collection

    def get_collection(self, name: str) -> Collection:
        """The collection called ``name``; NotFound if there is none."""
        rows = self._rows(_COLLECTIONS + " WHERE name = ?", [name])
        if not rows:
            raise NotFound(
                f"No collection named '{name}'. Ingest a document into it to create it, "
                "or list collections to see the existing names.",
                param="collection",
            )
        return Collection(**rows[0])

    def get_collection_by_id(self, collection_id: int) -> Collection:
        """The collection with this id; NotFound if there is none."""
        rows = self._rows(_COLLECTIONS + " WHERE id = ?", [collection_id])
        if not rows:
            raise NotFound(f"No collection with id {collection_id}.", param="collection")
        return Collection(**rows[0])

    def list_collections(self) -> list[Collection]:
        """Every collection, by name, with its document and chunk counts."""
        return [Collection(**row) for row in self._rows(_COLLECTIONS + " ORDER BY name")]

    def collection_version(self, collection_id: int) -> int:
        """The collection's change counter (one query, cheap enough for every search)."""
        return self._collection_column(collection_id, "version")

    def collection_dimensions(self, collection_id: int) -> int:
        """The size of the collection's vectors, read alone: ``get_collection_by_id`` also
        counts its documents, which costs more the bigger the collection (~2 ms at 5,000)."""
        return self._collection_column(collection_id, "dimensions")

    def _collection_column(self, collection_id: int, column: str) -> int:
        rows = self._tuples(f"SELECT {column} FROM collections WHERE id = ?", [collection_id])
        if not rows:
            raise NotFound(f"No collection with id {collection_id}.", param="collection")
        return int(rows[0][0])

    @staticmethod
    def _bump_version(conn: Conn, collection_id: int) -> int:
        """Record that the collection's chunks changed, inside the caller's transaction; returns
        the new version.

        Call it first in the transaction: on PostgreSQL the row lock it takes orders writers to
        one collection, so versions commit in increasing order and an index that has seen
        version v has seen every change up to v.
        """
        cursor = conn.execute(
            "UPDATE collections SET version = version + 1 WHERE id = ? RETURNING version",
            [collection_id],
        )
        row = cursor.fetchone()
        if row is None:
            raise NotFound(f"No collection with id {collection_id}.", param="collection")
        return int(row[0])

    @staticmethod
    def _count(conn: Conn, collection_id: int, documents: int, chunks: int) -> None:
        """Add to the collection's document and chunk counts, inside the writing transaction
        (after ``_bump_version``, whose row lock orders the writers)."""
        conn.execute(
            "UPDATE collections SET documents = documents + ?, chunks = chunks + ? WHERE id = ?",
            [documents, chunks, collection_id],
        )
