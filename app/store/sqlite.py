"""Everything SQLite-specific: the schema, opening a connection, and the SQL another database
would write differently (id lists, JSON metadata matches, upserts, full-text search).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

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

# A metadata field equal to a value; json_each matches top-level keys whatever characters they
# hold (a JSON path would not).
METADATA_EQUALS = (
    "EXISTS (SELECT 1 FROM json_each(documents.metadata) AS m WHERE m.key = ? AND m.value IS ?)"
)
SAVE_CLUSTERING = (
    "INSERT OR REPLACE INTO clusterings (collection_id, version, result, created_at) "
    "VALUES (?, ?, ?, ?)"
)
SAVE_MAP = (
    "INSERT OR REPLACE INTO document_maps "
    "(collection_id, version, method, document_ids, coordinates) VALUES (?, ?, ?, ?, ?)"
)
# Full-text search (FTS5): a MATCH expression comes from keywords.fts_query; rank is BM25,
# lower is better.
KEYWORD_SEARCH = (
    "SELECT chunks_fts.rowid AS id, -chunks_fts.rank AS score FROM chunks_fts "
    "JOIN chunks ON chunks.id = chunks_fts.rowid "
    "WHERE chunks_fts MATCH ? AND chunks.collection_id = ?"
)
KEYWORD_ORDER = " ORDER BY chunks_fts.rank LIMIT ?"
HIGHLIGHT = (
    "SELECT rowid AS id, highlight(chunks_fts, 0, ?, ?) AS text FROM chunks_fts "
    "WHERE chunks_fts MATCH ? AND rowid IN (SELECT value FROM json_each(?))"
)
WORD_FREQUENCY = "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?"
BEGIN = "BEGIN IMMEDIATE"


def connect(path: str | Path | None) -> sqlite3.Connection:
    """A connection to the database at ``path`` (in memory if None) with the schema in place."""
    conn = sqlite3.connect(":memory:" if path is None else str(path), check_same_thread=False)
    conn.execute("PRAGMA foreign_keys = ON")
    if path is not None:
        conn.execute("PRAGMA busy_timeout = 10000")
        # WAL lets readers (a CLI, a backup) run alongside the writer; NORMAL is
        # crash-safe under WAL and much faster than FULL.
        _use_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
    # One transaction: processes opening a new database at once must neither fail on each
    # other's CREATE nor see the FTS table before its triggers.
    conn.executescript(f"BEGIN IMMEDIATE;\n{SCHEMA}\nCOMMIT;")
    return conn


def in_ids(column: str) -> str:
    """``column IN`` a list given as one parameter (see ``id_list``)."""
    return f"{column} IN (SELECT value FROM json_each(?))"


def id_list(ids: Iterable[int | str]) -> str:
    """Values as a JSON array for ``json_each``: unlike ``IN (?, ...)``, no limit on their number."""
    return json.dumps([i if isinstance(i, str) else int(i) for i in ids])


def insert(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> int:
    """Insert one row inside the caller's transaction; returns its id."""
    columns = ", ".join(f'"{column}"' for column in row)
    marks = ", ".join("?" * len(row))
    cursor = conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))
    return cast(int, cursor.lastrowid)  # always set after a successful INSERT


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
