"""The SQLite store: collections, documents, chunks (with their vectors), FTS5 and jobs.

SQLite is the source of truth; vector indexes are derived from the vectors stored here.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import sqlite_utils

from app.errors import BadRequest, Conflict, NotFound

JOB_STATES = ("queued", "extracting", "embedding", "done", "failed")

# AUTOINCREMENT so ids are never reused: a chunk id is a FAISS id, and a reused id would
# silently attach an old vector in a not-yet-repaired index to a new chunk.
SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    model TEXT NOT NULL,
    dimensions INTEGER NOT NULL CHECK (dimensions > 0),
    backend TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES collections (id),
    title TEXT NOT NULL,
    source_name TEXT NOT NULL,
    source_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    external_id TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    text TEXT NOT NULL,
    chunk_count INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_hash ON documents (collection_id, content_hash);
CREATE INDEX IF NOT EXISTS documents_external ON documents (collection_id, external_id);
CREATE INDEX IF NOT EXISTS documents_source ON documents (collection_id, source_name);
-- Covers the document and chunk counts of a collection, read on every search.
CREATE INDEX IF NOT EXISTS documents_counts ON documents (collection_id, chunk_count);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id INTEGER NOT NULL REFERENCES documents (id),
    collection_id INTEGER NOT NULL REFERENCES collections (id),
    seq INTEGER NOT NULL,
    text TEXT NOT NULL,
    section TEXT,
    "start" INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    token_count INTEGER NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks (document_id, seq);
CREATE INDEX IF NOT EXISTS chunks_collection ON chunks (collection_id);
-- Keyword search over chunks (Porter stemming), kept in step by triggers; the same DDL
-- sqlite-utils' enable_fts writes, declared here so it is created with the tables, atomically.
CREATE VIRTUAL TABLE IF NOT EXISTS "chunks_fts" USING FTS5 (
    "text", "section",
    tokenize='porter',
    content="chunks"
);
CREATE TRIGGER IF NOT EXISTS "chunks_ai" AFTER INSERT ON "chunks" BEGIN
  INSERT INTO "chunks_fts" (rowid, "text", "section") VALUES (new.rowid, new."text", new."section");
END;
CREATE TRIGGER IF NOT EXISTS "chunks_ad" AFTER DELETE ON "chunks" BEGIN
  INSERT INTO "chunks_fts" ("chunks_fts", rowid, "text", "section") VALUES('delete', old.rowid, old."text", old."section");
END;
CREATE TRIGGER IF NOT EXISTS "chunks_au" AFTER UPDATE ON "chunks" BEGIN
  INSERT INTO "chunks_fts" ("chunks_fts", rowid, "text", "section") VALUES('delete', old.rowid, old."text", old."section");
  INSERT INTO "chunks_fts" (rowid, "text", "section") VALUES (new.rowid, new."text", new."section");
END;
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    collection TEXT NOT NULL,
    state TEXT NOT NULL,
    total INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    result TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
-- Clusters and maps (app.search.clusters, app.search.projection): the latest result per
-- collection, stamped with the collection version it was computed from.
CREATE TABLE IF NOT EXISTS clusterings (
    collection_id INTEGER PRIMARY KEY REFERENCES collections (id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    result TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS document_clusters (
    document_id INTEGER PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
    collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    cluster INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS document_clusters_collection
    ON document_clusters (collection_id, cluster);
CREATE TABLE IF NOT EXISTS document_maps (
    collection_id INTEGER PRIMARY KEY REFERENCES collections (id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    method TEXT NOT NULL,
    document_ids BLOB NOT NULL,
    coordinates BLOB NOT NULL
);
"""

# Chunks are counted from documents.chunk_count (written in the same transaction as the
# chunks): counting chunk rows costs ~5 ms per 100k chunks on every collection lookup.
_COLLECTIONS = """
SELECT c.*, count(d.id) AS documents, coalesce(sum(d.chunk_count), 0) AS chunks
FROM collections c LEFT JOIN documents d ON d.collection_id = c.id
"""
# Listings and lookups leave out the full text, which can be megabytes per document.
_DOCUMENT_SUMMARY = (
    "id, collection_id, title, source_name, source_type, size, content_hash, external_id, "
    "metadata, chunk_count, created_at, updated_at"
)
_CHUNK = 'id, document_id, collection_id, seq, text, section, "start", "end", token_count'
_WORD = re.compile(r"\w+")
Scalar = str | int | float | bool | None  # a metadata value a filter can match
# Keyword queries leave out words found in more than this share of all chunks (once there are
# more than COMMON_MIN such chunks): BM25 gives them little weight, yet they match nearly every
# chunk and cost most of a query's time. Of the shares tried on SciFact's train queries
# (0.1-0.5), 0.15 scored best (nDCG@10 0.687 against 0.684 keeping every word) and made
# keyword search about four times faster.
COMMON_SHARE = 0.15
COMMON_MIN = 1000


@dataclass(frozen=True)
class Collection:
    """A named set of documents embedded with one model."""

    id: int
    name: str
    model: str
    dimensions: int
    backend: str
    version: int
    created_at: str
    documents: int
    chunks: int


@dataclass(frozen=True)
class Document:
    """A stored document; ``text`` is None when it came from a listing or lookup."""

    id: int
    collection_id: int
    title: str
    source_name: str
    source_type: str
    size: int
    content_hash: str
    external_id: str | None
    metadata: dict[str, Any]
    chunk_count: int
    created_at: str
    updated_at: str
    text: str | None = None


@dataclass(frozen=True)
class ChunkRecord:
    """A chunk to store: its text and where it sits in the document text."""

    seq: int
    text: str
    start: int
    end: int
    token_count: int
    section: str | None = None


@dataclass(frozen=True)
class Chunk:
    """A stored chunk; its id is also its id in the vector index."""

    id: int
    document_id: int
    collection_id: int
    seq: int
    text: str
    section: str | None
    start: int
    end: int
    token_count: int


@dataclass(frozen=True)
class AddResult:
    """What ``add_document`` changed: the index must add ``chunk_ids`` and drop ``removed_ids``."""

    document_id: int
    chunk_ids: list[int]
    removed_ids: list[int]


@dataclass(frozen=True)
class Job:
    """A background ingestion job and its progress."""

    id: str
    collection: str
    state: str
    total: int
    done: int
    error: str | None
    result: dict[str, Any] | None
    created_at: str
    updated_at: str


def now() -> str:
    """The current time as an ISO 8601 UTC string."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def fts_words(text: str) -> list[str]:
    """The distinct words of ``text``, lower-cased, in order."""
    return list(dict.fromkeys(word.lower() for word in _WORD.findall(text)))


def fts_query(words: Iterable[str]) -> str:
    """An FTS5 MATCH expression: every word quoted and joined with OR."""
    # Quoting every word turns operators (AND, NEAR, -, *, parentheses) into plain words,
    # so nothing a user types can be an FTS5 syntax error.
    return " OR ".join(f'"{word}"' for word in words)


class Store:
    """SQLite-backed storage, safe to share between threads."""

    def __init__(self, path: str | Path | None = None) -> None:
        # One connection shared by all threads; the lock keeps one thread's open
        # transaction from being seen or committed by another.
        conn = sqlite3.connect(":memory:" if path is None else str(path), check_same_thread=False)
        self.db = sqlite_utils.Database(conn)
        self._lock = threading.RLock()
        self._frequencies: dict[str, int] = {}  # word -> chunks holding it; cleared on writes
        self.db.execute("PRAGMA foreign_keys = ON")
        if path is not None:
            self.db.execute("PRAGMA busy_timeout = 10000")
            # WAL lets readers (a CLI, a backup) run alongside the writer; NORMAL is
            # crash-safe under WAL and much faster than FULL.
            _use_wal(conn)
            self.db.execute("PRAGMA synchronous = NORMAL")
        # One transaction: processes opening a new database at once must neither fail on each
        # other's CREATE nor see the FTS table before its triggers.
        self.db.executescript(f"BEGIN IMMEDIATE;\n{SCHEMA}\nCOMMIT;")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self.db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed on success, rolled back on any error."""
        with self._lock:
            # Python only opens a transaction at the first write, so reads before it (and
            # sqlite-utils' execute(), which commits implicit ones) would fall outside it;
            # IMMEDIATE also takes the write lock now rather than failing half-way.
            self.db.conn.execute("BEGIN IMMEDIATE")
            with self.db.conn:
                yield self.db.conn
            self._frequencies.clear()

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """All rows of a query, read under the lock."""
        with self._lock:
            return list(self.db.query(sql, list(params)))

    # Collections

    def ensure_collection(self, name: str, model: str, dimensions: int, backend: str) -> Collection:
        """The collection called ``name``, created if missing; Conflict if it uses another model."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO collections (name, model, dimensions, backend, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (name, model, dimensions, backend, now()),
            )
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
        rows = self._rows(_COLLECTIONS + " WHERE c.name = ? GROUP BY c.id", [name])
        if not rows:
            raise NotFound(
                f"No collection named '{name}'. Ingest a document into it to create it, "
                "or list collections to see the existing names.",
                param="collection",
            )
        return Collection(**rows[0])

    def get_collection_by_id(self, collection_id: int) -> Collection:
        """The collection with this id; NotFound if there is none."""
        rows = self._rows(_COLLECTIONS + " WHERE c.id = ? GROUP BY c.id", [collection_id])
        if not rows:
            raise NotFound(f"No collection with id {collection_id}.", param="collection")
        return Collection(**rows[0])

    def list_collections(self) -> list[Collection]:
        """Every collection, by name, with its document and chunk counts."""
        return [
            Collection(**row) for row in self._rows(_COLLECTIONS + " GROUP BY c.id ORDER BY c.name")
        ]

    # Documents

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
                document_id = _insert(conn, "documents", row)
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
                _insert(
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
            document = self._require_document(document_id)
            removed = self._delete_chunks(conn, document_id)
            conn.execute("DELETE FROM documents WHERE id = ?", [document_id])
            self._bump_version(conn, document.collection_id)
        return removed

    def get_document(self, document_id: int) -> Document:
        """A document with its full text; NotFound if there is none."""
        rows = self._rows(
            f"SELECT {_DOCUMENT_SUMMARY}, text FROM documents WHERE id = ?", [document_id]
        )
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
            f"SELECT {_DOCUMENT_SUMMARY} FROM documents "
            "WHERE id IN (SELECT value FROM json_each(?))",
            [_json_ids(document_ids)],
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
            sql += " AND id IN (SELECT value FROM json_each(?))"
            params.append(_json_ids(document_ids))
        if source_types := list(source_types):
            sql += " AND source_type IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(source_types))
        for key, value in (metadata or {}).items():
            if value is not None and not isinstance(value, str | int | float | bool):
                raise BadRequest(
                    f"Metadata filter '{key}' must be a string, number, boolean or null.",
                    param="filters.metadata",
                )
            # json_each matches top-level keys whatever characters they hold (a path would not).
            sql += (
                " AND EXISTS (SELECT 1 FROM json_each(documents.metadata) AS m "
                "WHERE m.key = ? AND m.value IS ?)"
            )
            params += [key, value]
        return [row["id"] for row in self._rows(sql, params)]

    # Chunks

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
            f"SELECT {_CHUNK} FROM chunks WHERE id IN (SELECT value FROM json_each(?))",
            [_json_ids(chunk_ids)],
        )
        return {row["id"]: Chunk(**row) for row in rows}

    def chunk_documents(self, chunk_ids: Iterable[int]) -> dict[int, int]:
        """The document id of each of these chunks (missing chunks are left out)."""
        rows = self._rows(
            "SELECT id, document_id FROM chunks WHERE id IN (SELECT value FROM json_each(?))",
            [_json_ids(chunk_ids)],
        )
        return {row["id"]: row["document_id"] for row in rows}

    def document_chunk_ids(self, document_ids: Iterable[int]) -> list[int]:
        """Ids of every chunk of these documents."""
        rows = self._rows(
            "SELECT id FROM chunks WHERE document_id IN (SELECT value FROM json_each(?))",
            [_json_ids(document_ids)],
        )
        return [row["id"] for row in rows]

    def chunk_ids(self, collection_id: int) -> np.ndarray:
        """Every chunk id in the collection, ascending, as int64."""
        with self._lock:
            rows = self.db.execute(
                "SELECT id FROM chunks WHERE collection_id = ? ORDER BY id", [collection_id]
            ).fetchall()
        return np.array([row[0] for row in rows], dtype=np.int64)

    def chunk_vectors(
        self, collection_id: int, ids: Iterable[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Stored chunk ids (int64) and their vectors (float32 rows), for index rebuilds."""
        dimensions = self.get_collection_by_id(collection_id).dimensions
        sql = "SELECT id, vector FROM chunks WHERE collection_id = ?"
        params: list[Any] = [collection_id]
        if ids is not None:
            sql += " AND id IN (SELECT value FROM json_each(?))"
            params.append(_json_ids(ids))
        with self._lock:
            rows = self.db.execute(sql + " ORDER BY id", params).fetchall()
        ids_out = np.array([row[0] for row in rows], dtype=np.int64)
        matrix = np.frombuffer(b"".join(row[1] for row in rows), dtype="<f4")
        return ids_out, matrix.reshape(len(rows), dimensions).astype(np.float32)

    def keyword_search(
        self,
        collection_id: int,
        query: str,
        limit: int,
        document_ids: Iterable[int] | None = None,
    ) -> list[tuple[int, float]]:
        """BM25 matches as (chunk id, score), best first; higher scores are better.

        With ``document_ids`` only chunks of those documents match.
        """
        match = self._match(query)
        if not match:
            return []
        sql = (
            "SELECT chunks_fts.rowid AS id, -chunks_fts.rank AS score FROM chunks_fts "
            "JOIN chunks ON chunks.id = chunks_fts.rowid "
            "WHERE chunks_fts MATCH ? AND chunks.collection_id = ?"
        )
        params: list[Any] = [match, collection_id]
        if document_ids is not None:
            sql += " AND chunks.document_id IN (SELECT value FROM json_each(?))"
            params.append(_json_ids(document_ids))
        rows = self._rows(sql + " ORDER BY chunks_fts.rank LIMIT ?", [*params, limit])
        return [(row["id"], row["score"]) for row in rows]

    def highlight(
        self, query: str, chunk_ids: Iterable[int], before: str, after: str
    ) -> dict[int, str]:
        """Chunk texts with the query's matching words wrapped in ``before`` and ``after``.

        Matching uses the FTS tokenizer (so "inducing" marks "induced"); chunks with no match
        are left out.
        """
        match = self._match(query)
        if not match:
            return {}
        rows = self._rows(
            "SELECT rowid AS id, highlight(chunks_fts, 0, ?, ?) AS text FROM chunks_fts "
            "WHERE chunks_fts MATCH ? AND rowid IN (SELECT value FROM json_each(?))",
            [before, after, match, _json_ids(chunk_ids)],
        )
        return {row["id"]: row["text"] for row in rows}

    def _match(self, text: str) -> str:
        """The FTS5 query for ``text``: its words but the common ones, unless it has no others."""
        words = fts_words(text)
        with self._lock:
            total = self.db.execute("SELECT count(*) FROM chunks").fetchone()[0]
            if total <= COMMON_MIN:
                return fts_query(words)
            cutoff = max(COMMON_SHARE * total, COMMON_MIN)
            rare = [word for word in words if self._frequency(word) <= cutoff]
        return fts_query(rare or words)

    def _frequency(self, word: str) -> int:
        """How many chunks hold ``word`` (as the FTS tokenizer stems it)."""
        if word not in self._frequencies:
            if len(self._frequencies) > 100_000:  # only between writes, but words are endless
                self._frequencies.clear()
            self._frequencies[word] = self.db.execute(
                "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", [fts_query([word])]
            ).fetchone()[0]
        return self._frequencies[word]

    def compact(self) -> None:
        """Reclaim the space left by deleted rows."""
        with self._lock:
            self.db.execute("VACUUM")

    # Jobs

    def create_job(self, collection: str, total: int = 0) -> Job:
        """A new queued job."""
        stamp = now()
        with self._transaction() as conn:
            job_id = uuid.uuid4().hex
            conn.execute(
                "INSERT INTO jobs (id, collection, state, total, created_at, updated_at) "
                "VALUES (?, ?, 'queued', ?, ?, ?)",
                (job_id, collection, total, stamp, stamp),
            )
        return self.get_job(job_id)

    def update_job(self, job_id: str, **fields: Any) -> Job:
        """Set some of a job's state, total, done, error and result."""
        unknown = set(fields) - {"state", "total", "done", "error", "result"}
        if unknown:
            raise TypeError(f"update_job got unknown fields: {', '.join(sorted(unknown))}")
        if "state" in fields and fields["state"] not in JOB_STATES:
            raise ValueError(f"Unknown job state {fields['state']!r}")
        if "result" in fields:
            fields["result"] = json.dumps(fields["result"])
        fields["updated_at"] = now()
        assignments = ", ".join(f"{column} = ?" for column in fields)
        with self._transaction() as conn:
            conn.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", [*fields.values(), job_id])
        return self.get_job(job_id)

    def get_job(self, job_id: str) -> Job:
        """A job; NotFound if there is none."""
        rows = self._rows("SELECT * FROM jobs WHERE id = ?", [job_id])
        if not rows:
            raise NotFound(f"No job with id {job_id}.", param="job_id")
        row = rows[0]
        return Job(**(row | {"result": json.loads(row["result"]) if row["result"] else None}))

    def fail_unfinished_jobs(self, reason: str) -> int:
        """Mark every queued or running job failed (they died with the process); returns how many."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET state = 'failed', error = ?, updated_at = ? "
                "WHERE state NOT IN ('done', 'failed')",
                (reason, now()),
            )
        return cursor.rowcount

    # Clusters and maps (clustering feature: app.search.clusters, app.search.projection)

    def document_chunk_vectors(self, collection_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Each chunk's document id (int64) and vector (float32 rows), for document vectors."""
        dimensions = self.get_collection_by_id(collection_id).dimensions
        with self._lock:
            rows = self.db.execute(
                "SELECT document_id, vector FROM chunks WHERE collection_id = ?", [collection_id]
            ).fetchall()
        document_ids = np.array([row[0] for row in rows], dtype=np.int64)
        matrix = np.frombuffer(b"".join(row[1] for row in rows), dtype="<f4")
        return document_ids, matrix.reshape(len(rows), dimensions).astype(np.float32)

    def document_texts(self, collection_id: int, chars: int) -> dict[int, tuple[str, str]]:
        """Each document's (title, first ``chars`` characters of text), keyed by id."""
        with self._lock:
            rows = self.db.execute(
                "SELECT id, title, substr(text, 1, ?) FROM documents WHERE collection_id = ?",
                [chars, collection_id],
            ).fetchall()
        return {row[0]: (row[1], row[2]) for row in rows}

    def document_titles(self, collection_id: int) -> dict[int, str]:
        """Each document's title, keyed by id."""
        with self._lock:
            rows = self.db.execute(
                "SELECT id, title FROM documents WHERE collection_id = ?", [collection_id]
            ).fetchall()
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
                "INSERT OR REPLACE INTO clusterings (collection_id, version, result, created_at) "
                "VALUES (?, ?, ?, ?)",
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
        with self._lock:
            rows = self.db.execute(
                "SELECT document_id, cluster FROM document_clusters WHERE collection_id = ?",
                [collection_id],
            ).fetchall()
        return dict(rows)

    def save_map(self, collection_id: int, stored: StoredMap) -> None:
        """Replace the collection's cached document map."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO document_maps "
                "(collection_id, version, method, document_ids, coordinates) VALUES (?, ?, ?, ?, ?)",
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

    # Helpers

    def _require_document(self, document_id: int, collection_id: int | None = None) -> Document:
        """The document (in that collection, if given); NotFound otherwise."""
        rows = self._rows(f"SELECT {_DOCUMENT_SUMMARY} FROM documents WHERE id = ?", [document_id])
        if not rows or collection_id not in (None, rows[0]["collection_id"]):
            raise NotFound(f"No document with id {document_id}.", param="document_id")
        return _document(rows[0])

    @staticmethod
    def _delete_chunks(conn: sqlite3.Connection, document_id: int) -> list[int]:
        """Delete a document's chunks inside the caller's transaction; returns their ids."""
        ids = [
            row[0]
            for row in conn.execute("SELECT id FROM chunks WHERE document_id = ?", [document_id])
        ]
        conn.execute("DELETE FROM chunks WHERE document_id = ?", [document_id])
        return ids

    @staticmethod
    def _bump_version(conn: sqlite3.Connection, collection_id: int) -> None:
        """Record that the collection's chunks changed, inside the caller's transaction."""
        conn.execute("UPDATE collections SET version = version + 1 WHERE id = ?", [collection_id])


def _use_wal(conn: sqlite3.Connection, attempts: int = 100) -> None:
    """Switch the database to WAL, retrying while other processes open the same new file.

    Two connections switching at once each hold a shared lock and want an exclusive one, so
    SQLite answers one of them "database is locked" at once, without waiting (a deadlock).
    """
    for attempt in range(attempts):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.05)


def _insert(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> int:
    """Insert one row inside the caller's transaction; returns its id."""
    columns = ", ".join(f'"{column}"' for column in row)
    marks = ", ".join("?" * len(row))
    cursor = conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))
    return cast(int, cursor.lastrowid)  # always set after a successful INSERT


def _json_ids(ids: Iterable[int]) -> str:
    """Ids as a JSON array for ``json_each``: unlike ``IN (?, ...)``, no limit on their number."""
    return json.dumps([int(i) for i in ids])


def _document(row: dict[str, Any]) -> Document:
    """A Document from a documents row."""
    return Document(**(row | {"metadata": json.loads(row["metadata"])}))


# Clusters and maps (clustering feature): what the store keeps of them.


@dataclass(frozen=True)
class StoredClustering:
    """A collection's latest clustering: the JSON result and the version it was computed from."""

    collection_id: int
    version: int
    result: dict[str, Any]
    created_at: str


@dataclass(frozen=True)
class StoredMap:
    """A cached 2D map: one (x, y) row per document id, valid for one collection version."""

    version: int
    method: str
    document_ids: np.ndarray
    coordinates: np.ndarray
