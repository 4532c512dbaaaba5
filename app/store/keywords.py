"""Keyword search: which words of a query to look up, BM25 matches and highlighted matches."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from app.store import sqlite
from app.store.connection import Connection

_WORD = re.compile(r"\w+")
# Keyword queries leave out words found in more than this share of all chunks (once there are
# more than COMMON_MIN such chunks): BM25 gives them little weight, yet they match nearly every
# chunk and cost most of a query's time. Of the shares tried on SciFact's train queries
# (0.1-0.5), 0.15 scored best (nDCG@10 0.687 against 0.684 keeping every word) and made
# keyword search about four times faster.
COMMON_SHARE = 0.15
COMMON_MIN = 1000


def fts_words(text: str) -> list[str]:
    """The distinct words of ``text``, lower-cased, in order."""
    return list(dict.fromkeys(word.lower() for word in _WORD.findall(text)))


def fts_query(words: Iterable[str]) -> str:
    """An FTS5 MATCH expression: every word quoted and joined with OR."""
    # Quoting every word turns operators (AND, NEAR, -, *, parentheses) into plain words,
    # so nothing a user types can be an FTS5 syntax error.
    return " OR ".join(f'"{word}"' for word in words)


class Keywords(Connection):
    """BM25 keyword search over chunk texts and sections."""

    def __init__(self, path: str | Path | None = None) -> None:
        super().__init__(path)
        self._frequencies: dict[str, int] = {}  # word -> chunks holding it; cleared on writes

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
        match = self._match(query)
        if not match:
            return []
        sql = sqlite.KEYWORD_SEARCH
        params: list[Any] = [match, collection_id]
        if document_ids is not None:
            sql += f" AND {sqlite.in_ids('chunks.document_id')}"
            params.append(sqlite.id_list(document_ids))
        rows = self._rows(sql + sqlite.KEYWORD_ORDER, [*params, limit])
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
        rows = self._rows(sqlite.HIGHLIGHT, [before, after, match, sqlite.id_list(chunk_ids)])
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
                sqlite.WORD_FREQUENCY, [fts_query([word])]
            ).fetchone()[0]
        return self._frequencies[word]
