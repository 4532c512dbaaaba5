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
# The documents of files synced from a folder (app.ingest.synced): their path and file hash.
FILE_DOCUMENTS = (
    "SELECT id, external_id, json_extract(metadata, '$.path') AS path, "
    "json_extract(metadata, '$.file_sha256') AS sha256 FROM documents "
    "WHERE collection_id = ? AND json_extract(metadata, '$.file_sha256') IS NOT NULL"
)
SAVE_CLUSTERING = (
    "INSERT OR REPLACE INTO clusterings (collection_id, version, result, created_at) "
    "VALUES (?, ?, ?, ?)"
)
SAVE_MAP = (
    "INSERT OR REPLACE INTO document_maps "
    "(collection_id, version, method, document_ids, coordinates) VALUES (?, ?, ?, ?, ?)"
)
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
    _split_shared_fts(conn)
    return conn


# Keyword search (FTS5, Porter stemming): one full-text table per collection, so BM25's statistics
# (row count, document frequencies, lengths) and the common-word counts are the collection's own.
# Each reads its text from a view of the collection's chunks and is kept in step by triggers.


def fts_table(collection_id: int) -> str:
    """The name of the collection's full-text table."""
    return f"chunks_fts_{int(collection_id)}"


def create_fts(conn: sqlite3.Connection, collection_id: int) -> None:
    """Create the collection's full-text table, view and triggers if missing (in a transaction)."""
    n, fts = int(collection_id), fts_table(collection_id)
    delete = f"INSERT INTO {fts} ({fts}, rowid, text, section) VALUES ('delete', old.id, old.text, old.section);"
    insert = f"INSERT INTO {fts} (rowid, text, section) VALUES (new.id, new.text, new.section);"
    for statement in (
        f"CREATE VIEW IF NOT EXISTS chunks_{n} AS "
        f"SELECT id, text, section FROM chunks WHERE collection_id = {n}",
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING FTS5 "
        f"(text, section, tokenize='porter', content='chunks_{n}', content_rowid='id')",
        f"CREATE TRIGGER IF NOT EXISTS chunks_ai_{n} AFTER INSERT ON chunks "
        f"WHEN new.collection_id = {n} BEGIN {insert} END",
        f"CREATE TRIGGER IF NOT EXISTS chunks_ad_{n} AFTER DELETE ON chunks "
        f"WHEN old.collection_id = {n} BEGIN {delete} END",
        f"CREATE TRIGGER IF NOT EXISTS chunks_au_{n} AFTER UPDATE ON chunks "
        f"WHEN old.collection_id = {n} BEGIN {delete} {insert} END",
    ):
        conn.execute(statement)


def keyword_search_sql(collection_id: int, in_documents: bool) -> str:
    """BM25 matches (id, score; higher is better) of a MATCH expression in the collection, best
    first; parameters: the expression, [a document id list,] the limit."""
    fts = fts_table(collection_id)
    sql = f"SELECT {fts}.rowid AS id, -{fts}.rank AS score FROM {fts}"
    if in_documents:
        sql += f" JOIN chunks ON chunks.id = {fts}.rowid WHERE {fts} MATCH ?"
        sql += f" AND {in_ids('chunks.document_id')}"
    else:
        sql += f" WHERE {fts} MATCH ?"
    return sql + f" ORDER BY {fts}.rank LIMIT ?"


def highlight_sql(collection_id: int) -> str:
    """Chunk texts (id, text) with matches marked; parameters: before, after, the MATCH
    expression and a chunk id list."""
    fts = fts_table(collection_id)
    return (
        f"SELECT rowid AS id, highlight({fts}, 0, ?, ?) AS text FROM {fts} "
        f"WHERE {fts} MATCH ? AND {in_ids('rowid')}"
    )


def word_frequency_sql(collection_id: int) -> str:
    """How many of the collection's chunks match a MATCH expression."""
    fts = fts_table(collection_id)
    return f"SELECT count(*) FROM {fts} WHERE {fts} MATCH ?"


def _split_shared_fts(conn: sqlite3.Connection) -> None:
    """Move a database from one full-text table shared by every collection to one each."""
    conn.execute(BEGIN)
    with conn:
        shared = "SELECT 1 FROM sqlite_master WHERE name = 'chunks_fts'"
        if conn.execute(shared).fetchone() is None:
            return
        for trigger in ("chunks_ai", "chunks_ad", "chunks_au"):
            conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        conn.execute("DROP TABLE chunks_fts")
        for (collection_id,) in conn.execute("SELECT id FROM collections").fetchall():
            create_fts(conn, collection_id)
            fts = fts_table(collection_id)
            conn.execute(f"INSERT INTO {fts} ({fts}) VALUES ('rebuild')")


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
