"""What differs between the databases the store runs on, behind one interface.

``open_dialect(url)`` picks the implementation: a ``postgresql://`` URL gives PostgreSQL
(``app.store.postgres``), anything else a SQLite file path (``app.store.sqlite``); None is an
in-memory SQLite database (tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from app.store.filters import Condition


class Cursor(Protocol):
    """The part of a DB-API cursor the store uses."""

    rowcount: int
    description: Sequence[Sequence[Any]] | None

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    """A connection taking ``?`` placeholders, whichever database is behind it."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> Any: ...


class Dialect(Protocol):
    """A database: its connections, and the SQL the two databases write differently."""

    name: str
    unavailable: tuple[type[Exception], ...]  # errors meaning the database does not answer
    # Appended to a job-claiming SELECT: other replicas skip the row instead of waiting for it.
    skip_locked: str
    file_documents: str  # (id, external id, path, file sha256) of synced files' documents
    save_clustering: str
    save_map: str

    def transaction(self) -> AbstractContextManager[Conn]:
        """One write transaction: committed on success, rolled back on any error."""
        ...

    def read(self) -> AbstractContextManager[Conn]:
        """A connection for reads (each statement sees the latest committed data)."""
        ...

    def close(self) -> None: ...

    def compact(self) -> None:
        """Reclaim the space left by deleted rows."""
        ...

    def lock(self, conn: Conn, key: str) -> None:
        """Serialise transactions naming ``key`` until this one ends."""
        ...

    def in_ids(self, column: str) -> str:
        """``column`` in a list given as one parameter (see ``id_list``)."""
        ...

    def id_list(self, ids: Iterable[int | str]) -> Any:
        """Values as the one parameter ``in_ids`` takes."""
        ...

    def metadata_condition(self, condition: Condition) -> tuple[str, list[Any]]:
        """SQL and parameters testing one metadata condition on ``documents``."""
        ...

    def insert(self, conn: Conn, table: str, row: dict[str, Any]) -> int:
        """Insert one row inside the caller's transaction; returns its id."""
        ...

    def create_fts(self, conn: Conn, collection_id: int) -> None:
        """Whatever full-text search needs for a new collection."""
        ...

    def match(self, words: Iterable[str]) -> str:
        """A full-text query matching any of ``words`` (taken as plain words, never syntax)."""
        ...

    def keyword_search(
        self,
        collection_id: int,
        words: list[str],
        weights: list[float],
        limit: int,
        document_ids: Any | None,
    ) -> tuple[str, list[Any]]:
        """SQL and parameters for (id, score) matches of any of ``words``, best first, higher
        scores better; ``weights`` are the words' IDF where the ranking has none of its own."""
        ...

    def mark(self, match: str, texts: dict[int, str], before: str, after: str) -> dict[int, str]:
        """The texts (by id) that ``match`` matches, its words wrapped in ``before``/``after``."""
        ...

    def word_frequency(self, collection_id: int, match: str) -> tuple[str, list[Any]]:
        """SQL and parameters counting the collection's chunks that match; -1 for a word the
        database never searches (a stop word)."""
        ...

    def words_in(self, matches: list[str], text: str, section: str | None) -> set[int]:
        """The positions in ``matches`` (one word each) of those a chunk of this text and
        section matches."""
        ...

    types: dict[str, str]  # column types the shared schema names: serial, blob, float
    weighs_words: bool  # whether its ranking weighs words by rarity itself (BM25 does)
    drops_stop_words: bool  # whether its full-text search leaves out words like "the"

    def migrate(self, conn: Conn, version: int) -> None:
        """This database's own steps of a schema migration (see ``app.store.migrations``)."""
        ...


def is_postgres(url: str | Path | None) -> bool:
    """Whether ``url`` names a PostgreSQL database."""
    return isinstance(url, str) and url.startswith(("postgresql://", "postgres://"))


def open_dialect(url: str | Path | None, pool_size: int = 10) -> Dialect:
    """The database at ``url``: PostgreSQL for a ``postgresql://`` URL, else a SQLite file."""
    if is_postgres(url):
        from app.store.postgres import Postgres  # psycopg is an optional extra

        return Postgres(str(url), pool_size)
    from app.store.sqlite import SQLite

    return SQLite(url, pool_size)
