"""Keyword search: which words of a query to look up, ranked matches and highlighted matches.

SQLite ranks with FTS5's BM25, PostgreSQL with ``ts_rank`` weighted by each word's IDF; the SQL
is in each dialect.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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


class Keywords(Connection):
    """Keyword search over chunk texts and sections."""

    def __init__(self, url: str | Path | None = None, **options: Any) -> None:
        super().__init__(url, **options)
        # (collection id, word) -> the collection's chunks holding it, and collection id -> its
        # chunks: read for every keyword query (several times in a hybrid one); cleared on writes
        self._frequencies: dict[tuple[int, str], int] = {}
        self._chunk_counts: dict[int, int] = {}

    def _written(self) -> None:
        super()._written()
        self._frequencies.clear()
        self._chunk_counts.clear()

    def keyword_search(
        self,
        collection_id: int,
        query: str,
        limit: int,
        document_ids: Iterable[int] | None = None,
    ) -> list[tuple[int, float]]:
        """Matches as (chunk id, score), best first; higher scores are better.

        With ``document_ids`` only chunks of those documents match.
        """
        words = self.keyword_terms(collection_id, query)
        if not self.dialect.match(words):
            return []
        weights = [] if self.dialect.weighs_words else self._idfs(collection_id, words)
        ids = None if document_ids is None else self.dialect.id_list(document_ids)
        sql, params = self.dialect.keyword_search(collection_id, words, weights, limit, ids)
        rows = self._rows(sql, params)
        return [(row["id"], row["score"]) for row in rows]

    def highlight(
        self, collection_id: int, query: str, texts: dict[int, str], before: str, after: str
    ) -> dict[int, str]:
        """``texts`` (the collection's chunk texts, by id) with the query's matching words
        wrapped in ``before`` and ``after``.

        Matching is keyword search's (its words, its stemming: "inducing" marks "induced");
        texts with no match are left out.
        """
        match = self._match(collection_id, query)
        if not match or not texts:
            return {}
        return self.dialect.mark(match, texts, before, after)

    def keyword_coverage(self, collection_id: int, query: str, chunk_id: int) -> float:
        """How much of ``query`` chunk ``chunk_id`` holds, 0 to 1: the inverse document
        frequency of the query words it contains over that of all the words keyword search
        looks up (as BM25 weighs them, so a rare word counts more than a common one)."""
        words = self.keyword_terms(collection_id, query)
        if not words:
            return 0.0
        chunk = self._tuples("SELECT text, section FROM chunks WHERE id = ?", [chunk_id])
        if not chunk:  # deleted since it was found
            return 0.0
        weights = self._idfs(collection_id, words)
        held = self.dialect.words_in([self.dialect.match([word]) for word in words], *chunk[0])
        return sum(w for i, w in enumerate(weights) if i in held) / sum(weights)

    def keyword_terms(self, collection_id: int, text: str) -> list[str]:
        """The words of ``text`` that keyword search looks up: all but those common in the
        collection, unless it has no others (an index that ranks text itself is sent these)."""
        words = fts_words(text)
        if self.dialect.drops_stop_words:  # never searched: they would only lower coverage
            words = [word for word in words if self._frequency(collection_id, word) >= 0]
        total = self._chunk_count(collection_id)
        if total <= COMMON_MIN:
            return words
        cutoff = max(COMMON_SHARE * total, COMMON_MIN)
        return [word for word in words if self._frequency(collection_id, word) <= cutoff] or words

    def _match(self, collection_id: int, text: str) -> str:
        """The full-text query for ``text``'s keyword terms."""
        return self.dialect.match(self.keyword_terms(collection_id, text))

    def _idfs(self, collection_id: int, words: list[str]) -> list[float]:
        """Each word's inverse document frequency in the collection."""
        total = self._chunk_count(collection_id)
        return [_idf(total, self._frequency(collection_id, word)) for word in words]

    def _chunk_count(self, collection_id: int) -> int:
        if collection_id not in self._chunk_counts:
            sql = "SELECT count(*) FROM chunks WHERE collection_id = ?"
            self._chunk_counts[collection_id] = int(self._tuples(sql, [collection_id])[0][0])
        return self._chunk_counts[collection_id]

    def _frequency(self, collection_id: int, word: str) -> int:
        """How many of the collection's chunks hold ``word`` (as the FTS tokenizer stems it);
        -1 for a word the database never searches."""
        key = (collection_id, word)
        if key not in self._frequencies:
            if len(self._frequencies) > 100_000:  # only between writes, but words are endless
                self._frequencies.clear()
            sql, params = self.dialect.word_frequency(collection_id, self.dialect.match([word]))
            self._frequencies[key] = self._tuples(sql, params)[0][0]
        return self._frequencies[key]


def _idf(total: int, frequency: int) -> float:
    """A word's inverse document frequency as FTS5's BM25 computes it (never below 1e-6)."""
    return max(math.log((total - frequency + 0.5) / (frequency + 0.5)), 1e-6)
