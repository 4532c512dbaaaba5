"""Keyword search: which words of a query to look up, BM25 matches and highlighted matches."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from app.store import sqlite
from app.store.connection import Connection

WORDS = re.compile(r"\w+")  # what keyword search counts as a word
# Keyword queries leave out words found in more than this share of a collection's chunks (once there are
# more than COMMON_MIN such chunks): BM25 gives them little weight, yet they match nearly every
# chunk and cost most of a query's time. Of the shares tried on SciFact's train queries
# (0.1-0.5), 0.15 scored best (nDCG@10 0.687 against 0.684 keeping every word) and made
# keyword search about four times faster.
COMMON_SHARE = 0.15
COMMON_MIN = 1000


def fts_words(text: str) -> list[str]:
    """The distinct words of ``text``, lower-cased, in order."""
    return list(dict.fromkeys(word.lower() for word in WORDS.findall(text)))


def fts_query(words: Iterable[str]) -> str:
    """An FTS5 MATCH expression: every word quoted and joined with OR."""
    # Quoting every word turns operators (AND, NEAR, -, *, parentheses) into plain words,
    # so nothing a user types can be an FTS5 syntax error.
    return " OR ".join(f'"{word}"' for word in words)


class Keywords(Connection):
    """BM25 keyword search over chunk texts and sections."""

    def __init__(self, path: str | Path | None = None) -> None:
        super().__init__(path)
        # (collection id, word) -> the collection's chunks holding it; cleared on writes
        self._frequencies: dict[tuple[int, str], int] = {}

    def _written(self) -> None:
        super()._written()
        self._frequencies.clear()

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
        match = self._match(collection_id, query)
        if not match:
            return []
        params: list[Any] = [match]
        if document_ids is not None:
            params.append(sqlite.id_list(document_ids))
        sql = sqlite.keyword_search_sql(collection_id, document_ids is not None)
        rows = self._rows(sql, [*params, limit])
        return [(row["id"], row["score"]) for row in rows]

    def highlight(
        self, query: str, chunk_ids: Iterable[int], before: str, after: str
    ) -> dict[int, str]:
        """Chunk texts with the query's matching words wrapped in ``before`` and ``after``.

        Matching uses the FTS tokenizer (so "inducing" marks "induced"); chunks with no match
        are left out.
        """
        ids = sqlite.id_list(chunk_ids)
        found: dict[int, str] = {}
        collections = self._rows(
            f"SELECT DISTINCT collection_id FROM chunks WHERE {sqlite.in_ids('id')}", [ids]
        )
        for row in collections:
            collection_id = row["collection_id"]
            if match := self._match(collection_id, query):
                marked = self._rows(
                    sqlite.highlight_sql(collection_id), [before, after, match, ids]
                )
                found |= {row["id"]: row["text"] for row in marked}
        return found

    def _match(self, collection_id: int, text: str) -> str:
        """The FTS5 query for ``text``: its words but those common in the collection, unless it
        has no others."""
        words = fts_words(text)
        with self._lock:
            total = self.db.execute(
                "SELECT count(*) FROM chunks WHERE collection_id = ?", [collection_id]
            ).fetchone()[0]
        if total <= COMMON_MIN:
            return fts_query(words)
        cutoff = max(COMMON_SHARE * total, COMMON_MIN)
        rare = [word for word in words if self._frequency(collection_id, word) <= cutoff]
        return fts_query(rare or words)

    def _frequency(self, collection_id: int, word: str) -> int:
        """How many of the collection's chunks hold ``word`` (as the FTS tokenizer stems it)."""
        key = (collection_id, word)
        if key not in self._frequencies:
            if len(self._frequencies) > 100_000:  # only between writes, but words are endless
                self._frequencies.clear()
            # The lock is taken per word, so a long query never holds it for the whole count.
            with self._lock:
                self._frequencies[key] = self.db.execute(
                    sqlite.word_frequency_sql(collection_id), [fts_query([word])]
                ).fetchone()[0]
        return self._frequencies[key]
