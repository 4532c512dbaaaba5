"""Everything SQLite-specific: opening the file, and the SQL another database would write
differently (id lists, JSON metadata matches, upserts, full-text search with FTS5).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import sqlite_utils

from app.store.filters import Condition, is_number

TOKENIZER = "porter"  # of every full-text table: English stemming over unicode61 words


class SQLite:
    """One SQLite file (or an in-memory database): one writer behind a lock, a pool of readers."""

    name = "sqlite"
    unavailable: tuple[type[Exception], ...] = ()  # a local file: its errors are bugs or full disks
    skip_locked = ""  # BEGIN IMMEDIATE already serialises writers
    # AUTOINCREMENT so ids are never reused: a chunk id is a FAISS id, and a reused id would
    # silently attach an old vector in a not-yet-repaired index to a new chunk.
    weighs_words = True  # FTS5's BM25
    drops_stop_words = False
    types = {"serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "blob": "BLOB", "float": "REAL"}
    # The documents of files synced from a folder (app.ingest.synced): their path and file hash.
    file_documents = (
        "SELECT id, external_id, json_extract(metadata, '$.path') AS path, "
        "json_extract(metadata, '$.file_sha256') AS sha256 FROM documents "
        "WHERE collection_id = ? AND json_extract(metadata, '$.file_sha256') IS NOT NULL"
    )
    save_clustering = (
        "INSERT OR REPLACE INTO clusterings (collection_id, version, result, created_at) "
        "VALUES (?, ?, ?, ?)"
    )
    save_map = (
        "INSERT OR REPLACE INTO document_maps "
        "(collection_id, version, method, document_ids, coordinates) VALUES (?, ?, ?, ?, ?)"
    )

    def __init__(self, path: str | Path | None, readers: int = 10) -> None:
        # One connection writes, under the lock (which also keeps one thread's open transaction
        # from being seen or committed by another). Reads take a connection of their own from a
        # pool: under WAL they see the last commit and never wait for a writer, nor for each
        # other (a search's keyword query runs beside its vector lookups). An in-memory database
        # exists only in its one connection, so there reads share it under the lock.
        self.db = sqlite_utils.Database(connect(path))
        self._lock = threading.RLock()
        self._path = None if path is None else str(path)
        self._readers = threading.BoundedSemaphore(max(1, readers))
        self._idle: list[sqlite3.Connection] = []
        self._local = threading.local()  # .writing: this thread holds the write transaction
        self._scratch = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self._scratch.execute(
            f"CREATE VIRTUAL TABLE marked USING FTS5 (text, section, tokenize='{TOKENIZER}')"
        )
        self._marking = threading.Lock()  # the scratch table (see ``_scratch_rows``)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """One write transaction: committed on success, rolled back on any error."""
        with self._lock:
            # Python only opens a transaction at the first write, so reads before it would
            # fall outside it; IMMEDIATE also takes the write lock now rather than failing
            # half-way.
            self.db.conn.execute("BEGIN IMMEDIATE")
            self._local.writing = True
            try:
                with self.db.conn:
                    yield self.db.conn
            finally:
                self._local.writing = False

    @contextmanager
    def read(self) -> Iterator[Any]:
        """A connection for reads: a pooled reader, or the writing connection inside this
        thread's own transaction (so it sees its uncommitted writes) or in memory."""
        if self._path is None or getattr(self._local, "writing", False):
            with self._lock:
                yield self.db.conn
            return
        with self._readers:
            conn = self._idle.pop() if self._idle else connect(self._path, readonly=True)
            try:
                yield conn
            finally:
                self._idle.append(conn)

    def close(self) -> None:
        """Close the connections."""
        with self._lock:
            while self._idle:
                self._idle.pop().close()
            self._scratch.close()
            self.db.close()

    def compact(self) -> None:
        """VACUUM the file."""
        with self._lock:
            self.db.execute("VACUUM")

    def lock(self, conn: Any, key: str) -> None:
        """Nothing to do: a write transaction already holds the only write lock."""

    def in_ids(self, column: str) -> str:
        """``column IN`` a JSON array given as one parameter."""
        return f"{column} IN (SELECT value FROM json_each(?))"

    def id_list(self, ids: Iterable[int | str]) -> str:
        """Values as a JSON array: unlike ``IN (?, ...)``, no limit on their number."""
        return json.dumps([i if isinstance(i, str) else int(i) for i in ids])

    def metadata_condition(self, condition: Condition) -> tuple[str, list[Any]]:
        """SQL and parameters testing one metadata condition on ``documents``."""
        return metadata_condition(condition)

    def insert(self, conn: Any, table: str, row: dict[str, Any]) -> int:
        """Insert one row inside the caller's transaction; returns its id."""
        columns = ", ".join(f'"{column}"' for column in row)
        marks = ", ".join("?" * len(row))
        cursor = conn.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values())
        )
        return cast(int, cursor.lastrowid)  # always set after a successful INSERT

    # Keyword search (FTS5, Porter stemming): one full-text table per collection, so BM25's
    # statistics (row count, document frequencies, lengths) and the common-word counts are the
    # collection's own. Each reads its text from a view of the collection's chunks and is kept
    # in step by triggers.

    def create_fts(self, conn: Any, collection_id: int) -> None:
        """Create the collection's full-text table, view and triggers if missing."""
        n, fts = int(collection_id), fts_table(collection_id)
        delete = f"INSERT INTO {fts} ({fts}, rowid, text, section) VALUES ('delete', old.id, old.text, old.section);"
        insert = f"INSERT INTO {fts} (rowid, text, section) VALUES (new.id, new.text, new.section);"
        for statement in (
            f"CREATE VIEW IF NOT EXISTS chunks_{n} AS "
            f"SELECT id, text, section FROM chunks WHERE collection_id = {n}",
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING FTS5 "
            f"(text, section, tokenize='{TOKENIZER}', content='chunks_{n}', content_rowid='id')",
            f"CREATE TRIGGER IF NOT EXISTS chunks_ai_{n} AFTER INSERT ON chunks "
            f"WHEN new.collection_id = {n} BEGIN {insert} END",
            f"CREATE TRIGGER IF NOT EXISTS chunks_ad_{n} AFTER DELETE ON chunks "
            f"WHEN old.collection_id = {n} BEGIN {delete} END",
            f"CREATE TRIGGER IF NOT EXISTS chunks_au_{n} AFTER UPDATE ON chunks "
            f"WHEN old.collection_id = {n} BEGIN {delete} {insert} END",
        ):
            conn.execute(statement)

    def match(self, words: Iterable[str]) -> str:
        """An FTS5 MATCH expression: every word quoted and joined with OR."""
        # Quoting every word turns operators (AND, NEAR, -, *, parentheses) into plain words,
        # so nothing a user types can be an FTS5 syntax error.
        return " OR ".join(f'"{word}"' for word in words)

    def keyword_search(
        self,
        collection_id: int,
        words: list[str],
        weights: list[float],
        limit: int,
        document_ids: Any | None,
    ) -> tuple[str, list[Any]]:
        """BM25 matches (id, score), best first (BM25 has its own IDF: no ``weights``)."""
        fts = fts_table(collection_id)
        match = self.match(words)
        sql = f"SELECT {fts}.rowid AS id, -{fts}.rank AS score FROM {fts}"
        params: list[Any] = [match]
        if document_ids is not None:
            sql += f" JOIN chunks ON chunks.id = {fts}.rowid WHERE {fts} MATCH ?"
            sql += f" AND {self.in_ids('chunks.document_id')}"
            params.append(document_ids)
        else:
            sql += f" WHERE {fts} MATCH ?"
        return sql + f" ORDER BY {fts}.rank LIMIT ?", [*params, limit]

    def mark(self, match: str, texts: dict[int, str], before: str, after: str) -> dict[int, str]:
        """FTS5's ``highlight`` over the scratch table holding just these texts."""
        sql = "SELECT rowid, highlight(marked, 0, ?, ?) FROM marked WHERE marked MATCH ?"
        with self._scratch_rows([(i, text, None) for i, text in texts.items()]) as conn:
            return dict(conn.execute(sql, [before, after, match]).fetchall())

    @contextmanager
    def _scratch_rows(self, rows: list[tuple[int, str, str | None]]) -> Iterator[Any]:
        """The scratch table holding just these (rowid, text, section) rows, in a transaction
        rolled back after: matching a few texts there uses a collection's tokenizer without
        reading the words' index entries over the whole collection (which took as long as the
        search that found them)."""
        with self._marking:
            self._scratch.execute("BEGIN")
            try:
                sql = "INSERT INTO marked (rowid, text, section) VALUES (?, ?, ?)"
                self._scratch.executemany(sql, rows)
                yield self._scratch
            finally:
                self._scratch.execute("ROLLBACK")

    def words_in(self, matches: list[str], text: str, section: str | None) -> set[int]:
        """The positions in ``matches`` of those the text and section match, each word looked
        up in the scratch table (see ``mark``) rather than in the collection's whole index."""
        one = "SELECT ? FROM marked WHERE marked MATCH ?"
        params = [value for i, match in enumerate(matches) for value in (i, match)]
        with self._scratch_rows([(1, text, section)]) as conn:
            return {
                row[0] for row in conn.execute(" UNION ALL ".join([one] * len(matches)), params)
            }

    def word_frequency(self, collection_id: int, match: str) -> tuple[str, list[Any]]:
        """How many of the collection's chunks match."""
        fts = fts_table(collection_id)
        return f"SELECT count(*) FROM {fts} WHERE {fts} MATCH ?", [match]

    def migrate(self, conn: Any, version: int) -> None:
        """SQLite's own migration steps: 2 splits the old shared full-text table."""
        if version == 2:
            self._split_shared_fts(conn)

    def _split_shared_fts(self, conn: Any) -> None:
        """Move a database from one full-text table shared by every collection to one each."""
        shared = "SELECT 1 FROM sqlite_master WHERE name = 'chunks_fts'"
        if conn.execute(shared).fetchone() is None:
            return
        for trigger in ("chunks_ai", "chunks_ad", "chunks_au"):
            conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        conn.execute("DROP TABLE chunks_fts")
        for (collection_id,) in conn.execute("SELECT id FROM collections").fetchall():
            self.create_fts(conn, collection_id)
            fts = fts_table(collection_id)
            conn.execute(f"INSERT INTO {fts} ({fts}) VALUES ('rebuild')")


# One metadata field of the document, matched through json_each: it reads top-level keys
# whatever characters they hold (a JSON path would not).
_FIELD = "EXISTS (SELECT 1 FROM json_each(documents.metadata) AS m WHERE m.key = ?{})"
# The field equals one of the values in a JSON array parameter (one parameter however many):
# JSON types must agree (1 is not true, nor "1"), except that integers and reals compare.
_ONE_OF = (
    "EXISTS (SELECT 1 FROM json_each(documents.metadata) AS m, json_each(?) AS v "
    "WHERE m.key = ? AND (v.type = m.type OR (v.type IN ('integer', 'real') AND "
    "m.type IN ('integer', 'real'))) AND (v.value = m.value OR v.type = 'null'))"
)
COMPARE = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def metadata_condition(condition: Condition) -> tuple[str, list[Any]]:
    """SQLite SQL and parameters for one metadata condition (dates compare by julianday)."""
    name, op, value = condition.field, condition.op, condition.value
    if op == "$exists":
        return ("" if value else "NOT ") + _FIELD.format(""), [name]
    if op in ("$eq", "$ne", "$in", "$nin"):
        values = list(value) if op in ("$in", "$nin") else [value]
        return ("NOT " if op in ("$ne", "$nin") else "") + _ONE_OF, [json.dumps(values), name]
    compare = COMPARE[op]
    if is_number(value):
        sql = _FIELD.format(f" AND m.type IN ('integer', 'real') AND m.value {compare} ?")
        return sql, [name, value]
    sql = _FIELD.format(f" AND m.type = 'text' AND julianday(m.value) {compare} julianday(?)")
    return sql, [name, value]


def fts_table(collection_id: int) -> str:
    """The name of the collection's full-text table."""
    return f"chunks_fts_{int(collection_id)}"


def connect(path: str | Path | None, readonly: bool = False) -> sqlite3.Connection:
    """A connection to the database at ``path`` (in memory if None); ``readonly`` for one
    that only reads (the pool's: a write through it is an error, never a second writer)."""
    conn = sqlite3.connect(":memory:" if path is None else str(path), check_same_thread=False)
    conn.execute("PRAGMA foreign_keys = ON")
    if path is not None:
        conn.execute("PRAGMA busy_timeout = 10000")
        if readonly:
            conn.execute("PRAGMA query_only = ON")
            return conn
        # WAL lets readers (the pool, a CLI, a backup) run alongside the writer; NORMAL is
        # crash-safe under WAL and much faster than FULL.
        _use_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
    return conn


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
