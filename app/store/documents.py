"""Documents: storing one with its chunks and vectors, replacing, deleting, finding, listing."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

import numpy as np

from app.errors import BadRequest, NotFound
from app.store.collections import Collections
from app.store.records import AddResult, ChunkRecord, Document, Scalar, now
from app.store.sqlite import FILE_DOCUMENTS, METADATA_EQUALS, id_list, in_ids, insert

# Listings and lookups leave out the full text, which can be megabytes per document.
_DOCUMENT_SUMMARY = (
    "id, collection_id, title, source_name, source_type, size, content_hash, external_id, "
    "metadata, chunk_count, created_at, updated_at"
)


class Documents(Collections):
    """Documents with their chunks and vectors, written in one transaction each."""

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
        fields and chunks; its old chunk ids come back in ``removed_ids``.
        """
        dimensions = self.get_collection_by_id(collection_id).dimensions
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
            removed: list[int] = []
            if replace_id is None:
                row |= {"collection_id": collection_id, "created_at": row["updated_at"]}
                document_id = insert(conn, "documents", row)
            else:
                self._require_document(replace_id, collection_id)
                removed = self._delete_chunks(conn, replace_id)
                assignments = ", ".join(f"{column} = ?" for column in row)
                conn.execute(
                    f"UPDATE documents SET {assignments} WHERE id = ?",
                    [*row.values(), replace_id],
                )
                document_id = replace_id
            chunk_ids = [
                insert(
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
                    },
                )
                for chunk, blob in zip(chunks, blobs, strict=True)
            ]
            self._bump_version(conn, collection_id)
        return AddResult(document_id, chunk_ids, removed)

    def delete_document(self, document_id: int) -> list[int]:
        """Delete a document and its chunks; returns the removed chunk ids."""
        with self._transaction() as conn:
            document = self.get_document(document_id, with_text=False)
            removed = self._delete_chunks(conn, document_id)
            conn.execute("DELETE FROM documents WHERE id = ?", [document_id])
            self._bump_version(conn, document.collection_id)
        return removed

    def delete_documents(self, document_ids: Iterable[int]) -> dict[int, list[int]]:
        """Delete these documents and their chunks in one transaction; returns the removed chunk
        ids by collection id (ids of no document are skipped)."""
        removed: dict[int, list[int]] = {}
        with self._transaction() as conn:
            for document in self.get_documents_by_id(document_ids).values():
                chunk_ids = self._delete_chunks(conn, document.id)
                conn.execute("DELETE FROM documents WHERE id = ?", [document.id])
                removed.setdefault(document.collection_id, []).extend(chunk_ids)
            for collection_id in removed:
                self._bump_version(conn, collection_id)
        return removed

    def file_documents(self, collection_id: int) -> list[tuple[int, str, str, str]]:
        """(id, external id, path, file sha256) of the collection's documents that came from a
        file uploaded with its path."""
        return [tuple(row) for row in self._tuples(FILE_DOCUMENTS, [collection_id])]

    def get_document(self, document_id: int, *, with_text: bool = True) -> Document:
        """A document, with its full text unless ``with_text`` is False; NotFound if none."""
        columns = f"{_DOCUMENT_SUMMARY}, text" if with_text else _DOCUMENT_SUMMARY
        rows = self._rows(f"SELECT {columns} FROM documents WHERE id = ?", [document_id])
        if not rows:
            raise NotFound(f"No document with id {document_id}.", param="document_id")
        return _document(rows[0])

    def list_documents(
        self, collection_id: int | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[Document], int]:
        """One page of documents, newest first (without their text), and the total count."""
        where, params = (
            ("WHERE collection_id = ?", [collection_id]) if collection_id is not None else ("", [])
        )
        with self._lock:
            rows = self._rows(
                f"SELECT {_DOCUMENT_SUMMARY} FROM documents {where} ORDER BY id DESC "
                "LIMIT ? OFFSET ?",
                [*params, limit, offset],
            )
            total = self._rows(f"SELECT count(*) AS n FROM documents {where}", params)[0]["n"]
        return [_document(row) for row in rows], total

    def get_documents_by_id(self, document_ids: Iterable[int]) -> dict[int, Document]:
        """These documents without their text (missing ids are left out), keyed by id."""
        rows = self._rows(
            f"SELECT {_DOCUMENT_SUMMARY} FROM documents WHERE {in_ids('id')}",
            [id_list(document_ids)],
        )
        return {row["id"]: _document(row) for row in rows}

    def filter_documents(
        self,
        collection_id: int,
        document_ids: Iterable[int] = (),
        source_types: Iterable[str] = (),
        metadata: dict[str, Scalar] | None = None,
    ) -> list[int]:
        """Ids of the collection's documents passing every given condition."""
        sql = "SELECT id FROM documents WHERE collection_id = ?"
        params: list[Any] = [collection_id]
        if document_ids := list(document_ids):
            sql += f" AND {in_ids('id')}"
            params.append(id_list(document_ids))
        if source_types := list(source_types):
            sql += f" AND {in_ids('source_type')}"
            params.append(id_list(source_types))
        for key, value in (metadata or {}).items():
            if value is not None and not isinstance(value, str | int | float | bool):
                raise BadRequest(
                    f"Metadata filter '{key}' must be a string, number, boolean or null.",
                    param="filters.metadata",
                )
            sql += f" AND {METADATA_EQUALS}"
            params += [key, value]
        return [row["id"] for row in self._rows(sql, params)]

    def _require_document(self, document_id: int, collection_id: int) -> Document:
        """The document (without its text) if it is in that collection; NotFound otherwise."""
        document = self.get_document(document_id, with_text=False)
        if document.collection_id != collection_id:
            raise NotFound(f"No document with id {document_id}.", param="document_id")
        return document

    @staticmethod
    def _delete_chunks(conn: sqlite3.Connection, document_id: int) -> list[int]:
        """Delete a document's chunks inside the caller's transaction; returns their ids."""
        ids = [
            row[0]
            for row in conn.execute("SELECT id FROM chunks WHERE document_id = ?", [document_id])
        ]
        conn.execute("DELETE FROM chunks WHERE document_id = ?", [document_id])
        return ids


def _document(row: dict[str, Any]) -> Document:
    """A Document from a documents row."""
    return Document(**(row | {"metadata": json.loads(row["metadata"])}))
