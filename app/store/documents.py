"""Documents: storing one with its chunks and vectors, replacing, deleting, finding, listing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from app.errors import BadRequest, NotFound
from app.jsonvalues import depth
from app.store.collections import Collections
from app.store.dialect import Conn
from app.store.filters import Filters, where_sql
from app.store.records import AddResult, ChunkRecord, Document, now

# Past these, stored metadata is not shown (JSON serialisers give up at a few hundred levels).
SHOWN_METADATA_DEPTH = 64
SHOWN_METADATA_BYTES = 1 << 20
# Listings and lookups leave out the full text, which can be megabytes per document.
_DOCUMENT_SUMMARY = (
    "id, collection_id, title, source_name, source_type, size, content_hash, external_id, "
    "metadata, chunk_count, created_at, updated_at"
)


class Documents(Collections):
    """Documents with their chunks and vectors, written in one transaction each."""

    def find_external(self, collection_id: int, external_id: str) -> Document:
        """The document with this external id in the collection; NotFound if there is none."""
        document = self.find_document(collection_id, external_id=external_id)
        if document is None:
            raise NotFound(
                f"No document with external_id {external_id!r} in this collection.",
                param="external_id",
            )
        return document

    def find_document(
        self,
        collection_id: int,
        *,
        content_hash: str | None = None,
        external_id: str | None = None,
        source_name: str | None = None,
    ) -> Document | None:
        """The newest document in the collection matching every given field, or None."""
        given = {
            "content_hash": content_hash,
            "external_id": external_id,
            "source_name": source_name,
        }
        where = {column: value for column, value in given.items() if value is not None}
        if not where:
            raise TypeError("find_document needs content_hash, external_id or source_name")
        conditions = "".join(f" AND {column} = ?" for column in where)
        rows = self._rows(
            f"SELECT {_DOCUMENT_SUMMARY} FROM documents WHERE collection_id = ?{conditions} "
            "ORDER BY id DESC LIMIT 1",
            [collection_id, *where.values()],
        )
        return _document(rows[0]) if rows else None

    def add_document(
        self,
        collection_id: int,
        fields: dict[str, Any],
        chunks: list[ChunkRecord],
        vectors: np.ndarray,
        replace_id: int | None = None,
    ) -> AddResult:
        """Store a document with its chunks and vectors in one transaction.

        With ``replace_id`` that document keeps its id and creation time but gets the new
        fields and chunks; its old chunk ids come back in ``removed_ids``. A new document whose
        ``external_id`` the collection already holds replaces that one too, so two writers
        (two replicas) sending the same external id at once end with one document.
        """
        dimensions = self.collection_dimensions(collection_id)
        if vectors.shape != (len(chunks), dimensions):
            raise BadRequest(
                f"Expected {len(chunks)} vectors of {dimensions} dimensions, "
                f"got an array of shape {vectors.shape}."
            )
        blobs = [row.tobytes() for row in np.ascontiguousarray(vectors, dtype="<f4")]
        row = {
            "title": fields["title"],
            "source_name": fields["source_name"],
            "source_type": fields["source_type"],
            "size": fields["size"],
            "content_hash": fields["content_hash"],
            "external_id": fields.get("external_id"),
            "metadata": json.dumps(fields.get("metadata") or {}),
            "text": fields["text"],
            "chunk_count": len(chunks),
            "updated_at": now(),
        }
        with self._transaction() as conn:
            version = self._bump_version(conn, collection_id)  # first: see _bump_version
            if replace_id is None and row["external_id"] is not None:
                replace_id = self._external(conn, collection_id, row["external_id"])
            removed: list[int] = []
            if replace_id is None:
                row |= {"collection_id": collection_id, "created_at": row["updated_at"]}
                document_id = self.dialect.insert(conn, "documents", row)
            else:
                self._require_document(conn, replace_id, collection_id)
                removed = self._delete_chunks(conn, collection_id, replace_id, version)
                assignments = ", ".join(f"{column} = ?" for column in row)
                conn.execute(
                    f"UPDATE documents SET {assignments} WHERE id = ?",
                    [*row.values(), replace_id],
                )
                document_id = replace_id
            chunk_ids = [
                self.dialect.insert(
                    conn,
                    "chunks",
                    {
                        "document_id": document_id,
                        "collection_id": collection_id,
                        "seq": chunk.seq,
                        "text": chunk.text,
                        "section": chunk.section,
                        "start": chunk.start,
                        "end": chunk.end,
                        "token_count": chunk.token_count,
                        "vector": blob,
                        "version": version,
                    },
                )
                for chunk, blob in zip(chunks, blobs, strict=True)
            ]
            self._count(conn, collection_id, int(replace_id is None), len(chunks) - len(removed))
        return AddResult(document_id, chunk_ids, removed, replaced=replace_id is not None)

    def delete_document(self, document_id: int) -> list[int]:
        """Delete a document and its chunks; returns the removed chunk ids."""
        collection_id = self.get_document(document_id, with_text=False).collection_id
        with self._transaction() as conn:
            version = self._bump_version(conn, collection_id)
            self._require_document(conn, document_id, collection_id)
            removed = self._delete_chunks(conn, collection_id, document_id, version)
            conn.execute("DELETE FROM documents WHERE id = ?", [document_id])
            self._count(conn, collection_id, -1, -len(removed))
        return removed

    def delete_documents(self, document_ids: Iterable[int]) -> dict[int, list[int]]:
        """Delete these documents and their chunks in one transaction; returns the removed chunk
        ids by collection id (ids of no document are skipped)."""
        documents = list(self.get_documents_by_id(document_ids).values())
        removed: dict[int, list[int]] = {}
        with self._transaction() as conn:
            collections = sorted({d.collection_id for d in documents})  # one lock order
            versions = {c: self._bump_version(conn, c) for c in collections}
            for document in documents:
                collection_id = document.collection_id
                chunk_ids = self._delete_chunks(
                    conn, collection_id, document.id, versions[collection_id]
                )
                conn.execute("DELETE FROM documents WHERE id = ?", [document.id])
                self._count(conn, collection_id, -1, -len(chunk_ids))
                removed.setdefault(collection_id, []).extend(chunk_ids)
        return removed

    def file_documents(self, collection_id: int) -> list[tuple[int, str, str, str]]:
        """(id, external id, path, file sha256) of the collection's documents that came from a
        file uploaded with its path."""
        return [tuple(row) for row in self._tuples(self.dialect.file_documents, [collection_id])]

    def get_document(self, document_id: int, *, with_text: bool = True) -> Document:
        """A document, with its full text unless ``with_text`` is False; NotFound if none."""
        columns = f"{_DOCUMENT_SUMMARY}, text" if with_text else _DOCUMENT_SUMMARY
        rows = self._rows(f"SELECT {columns} FROM documents WHERE id = ?", [document_id])
        if not rows:
            raise NotFound(f"No document with id {document_id}.", param="document_id")
        return _document(rows[0])

    def list_documents(
        self,
        collection_id: int | None = None,
        limit: int = 50,
        offset: int = 0,
        filters: Filters | None = None,
    ) -> tuple[list[Document], int]:
        """One page of documents, newest first (without their text), and the total count."""
        where, params = where_sql(filters or Filters(), self.dialect)
        if collection_id is not None:
            where, params = f"collection_id = ? AND {where}", [collection_id, *params]
        where = f"WHERE {where}"
        rows = self._rows(
            f"SELECT {_DOCUMENT_SUMMARY} FROM documents {where} ORDER BY id DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        total = self._rows(f"SELECT count(*) AS n FROM documents {where}", params)[0]["n"]
        return [_document(row) for row in rows], total

    def get_documents_by_id(self, document_ids: Iterable[int]) -> dict[int, Document]:
        """These documents without their text (missing ids are left out), keyed by id."""
        rows = self._rows(
            f"SELECT {_DOCUMENT_SUMMARY} FROM documents WHERE {self.dialect.in_ids('id')}",
            [self.dialect.id_list(document_ids)],
        )
        return {row["id"]: _document(row) for row in rows}

    def filter_documents(self, collection_id: int, filters: Filters) -> list[int]:
        """Ids of the collection's documents passing every condition of ``filters``."""
        where, params = where_sql(filters, self.dialect)
        rows = self._rows(
            f"SELECT id FROM documents WHERE collection_id = ? AND {where}",
            [collection_id, *params],
        )
        return [row["id"] for row in rows]

    def _external(self, conn: Conn, collection_id: int, external_id: str) -> int | None:
        """The collection's document with this external id, read after taking a lock on it."""
        self.dialect.lock(conn, f"external {collection_id} {external_id}")
        row = conn.execute(
            "SELECT id FROM documents WHERE collection_id = ? AND external_id = ? "
            "ORDER BY id DESC LIMIT 1",
            [collection_id, external_id],
        ).fetchone()
        return None if row is None else int(row[0])

    @staticmethod
    def _require_document(conn: Conn, document_id: int, collection_id: int) -> None:
        """NotFound unless the document is in that collection (inside the transaction)."""
        row = conn.execute("SELECT collection_id FROM documents WHERE id = ?", [document_id])
        found = row.fetchone()
        if found is None or found[0] != collection_id:
            raise NotFound(f"No document with id {document_id}.", param="document_id")

    @staticmethod
    def _delete_chunks(conn: Conn, collection_id: int, document_id: int, version: int) -> list[int]:
        """Delete a document's chunks inside the caller's transaction, recording their ids as
        removed at ``version`` for indexes following the database; returns the ids."""
        ids = [
            row[0]
            for row in conn.execute("SELECT id FROM chunks WHERE document_id = ?", [document_id])
        ]
        conn.execute("DELETE FROM chunks WHERE document_id = ?", [document_id])
        stamp = time.time()
        conn.executemany(
            "INSERT INTO chunk_removals (collection_id, chunk_id, version, removed_at) "
            "VALUES (?, ?, ?, ?)",
            [(collection_id, chunk_id, version, stamp) for chunk_id in ids],
        )
        return ids


def _document(row: dict[str, Any]) -> Document:
    """A Document from a documents row."""
    return Document(**(row | {"metadata": shown_metadata(row["metadata"])}))


def shown_metadata(stored: str) -> dict[str, Any]:
    """Stored metadata as it can be shown; a note in its place if it is too deep or too big.

    Records stored before the limits on metadata existed may hold anything; one of them must not
    make every listing and search of its collection fail.
    """
    if len(stored) > SHOWN_METADATA_BYTES:
        return {"_unshown": f"metadata of {len(stored):,} bytes; re-upload with less"}
    try:
        metadata = json.loads(stored)
    except RecursionError:
        metadata = None
    if metadata is None or depth(metadata) > SHOWN_METADATA_DEPTH:
        return {"_unshown": "metadata nested too deeply to show; re-upload with flatter metadata"}
    return metadata
