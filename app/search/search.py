"""Search a collection: semantic (vector index), keyword (FTS5 BM25) or hybrid (both, fused).

Each ranking takes a fixed number of candidate chunks (``DEPTH``), so the full ranked list of a
query never depends on the page asked for: pages are slices of one list, without duplicates or
gaps. Ties are broken by id for the same reason.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from app.errors import BadRequest, Conflict
from app.index.indexes import Indexes
from app.ingest.embedder import Embedder
from app.search.fusion import fuse, keyword_weight, standout
from app.search.query import (
    GROUPS,
    Hit,
    Neighbor,
    Page,
    QueryLimits,
    SearchQuery,
    Signal,
    check_choice,
    check_k,
    check_query,
)
from app.search.similarity import chunk_cosines
from app.search.snippets import CLOSE, OPEN, snippet
from app.store.database import Store
from app.store.filters import Filters
from app.store.records import Collection

DEPTH = 300  # candidate chunks taken from each ranking (more costs time, adds ~nothing)
KEYWORD_THREADS = 4  # hybrid searches whose keyword halves run at once; more wait their turn
EXACT_LIMIT = 20_000  # a filter allowing at most this many chunks is scored exactly

Ranking = list[tuple[int, float]]  # (id, score), best first


class Searcher:
    """Runs searches and neighbour queries over the store and its vector indexes."""

    def __init__(
        self, store: Store, indexes: Indexes, embedder: Embedder, limits: QueryLimits
    ) -> None:
        self.store = store
        self.indexes = indexes
        self.embedder = embedder
        self.limits = limits
        self._keyword_threads = ThreadPoolExecutor(KEYWORD_THREADS, "keyword-search")

    # -- search -----------------------------------------------------------------------------

    def search(self, collection_name: str, query: SearchQuery) -> Page:
        """One page of hits for ``query`` in the collection."""
        query = check_query(query)
        self.limits.check(query.text or "", query.filters)
        collection = self.store.get_collection(collection_name)
        if not collection.chunks:
            return Page([], 0, empty_message(collection))
        semantic, keyword, vector = self._candidates(collection, query)
        weight = self._keyword_weight(collection, query, semantic, keyword)
        if weight is not None and vector is not None:
            semantic = self._with_cosines(collection, vector, semantic, keyword)
        ranked = self._rank(query, semantic, keyword, weight)
        cosines: dict[int, float] = {}
        if vector is not None:
            cosines = chunk_cosines(
                self.store, collection.id, vector, {i.chunk_id for i in ranked}, dict(semantic)
            )
            if query.min_score is not None:
                ranked = [i for i in ranked if cosines.get(i.chunk_id, -2) >= query.min_score]
        page = ranked[query.offset : query.offset + query.k]
        return Page(self._hits(collection.id, query, page, cosines, weight), len(ranked))

    def _keyword_weight(
        self, collection: Collection, query: SearchQuery, semantic: Ranking, keyword: Ranking
    ) -> float | None:
        """The keyword ranking's weight in a hybrid search (None in the other modes): by how
        much of the query its best hit holds, and how far each list's top stands out."""
        if query.mode != "hybrid":
            return None
        if not keyword or query.text is None:
            return 0.0
        return keyword_weight(
            self.store.keyword_coverage(collection.id, query.text, keyword[0][0]),
            standout([score for _, score in semantic]),
            standout([score for _, score in keyword]),
        )

    def _with_cosines(
        self, collection: Collection, vector: np.ndarray, semantic: Ranking, keyword: Ranking
    ) -> Ranking:
        """The semantic ranking with the chunks only keyword search found, at their own cosines:
        fused, such a hit counts its real similarity rather than none."""
        known = dict(semantic)
        found = chunk_cosines(self.store, collection.id, vector, (i for i, _ in keyword), known)
        scored = known | found
        return top(np.array(list(scored)), np.array(list(scored.values())), len(scored))

    def _candidates(
        self, collection: Collection, query: SearchQuery
    ) -> tuple[Ranking, Ranking, np.ndarray | None]:
        """The semantic and keyword candidate lists the mode asks for, under the filters, and
        the query's vector (None in keyword mode)."""
        if self.indexes.ranks_text:
            # Qdrant: both lists in one request under one filter, once the query is embedded.
            vector = None if query.mode == "keyword" else self._query_vector(collection, query)
            text = None
            if query.mode != "semantic" and query.text is not None:
                # The words FTS5 would look up: Qdrant's BM25 then ranks as FTS5 does.
                text = " ".join(self.store.keyword_terms(collection.id, query.text)) or None
            if vector is None and text is None:
                return [], [], None
            both = self.indexes.candidates(collection.id, vector, text, query.filters, DEPTH)
            return _top(both[0]), _top(both[1]), vector
        allowed = self._allowed(collection, query.filters)
        # The keyword search runs in SQLite while the model embeds the query: both release the
        # GIL, so a hybrid search takes about as long as the slower of the two, not the sum.
        # The threads are kept: starting one per search cost ~2.5 ms on loaded cores.
        found = None
        if query.mode != "semantic" and query.text is not None:
            found = self._keyword_threads.submit(self._keyword, collection, query.text, allowed)
        semantic: Ranking = []
        vector = None
        if query.mode != "keyword":
            vector = self._query_vector(collection, query)
            semantic = self._semantic(collection, vector, allowed)
        return semantic, found.result() if found else [], vector

    def _query_vector(self, collection: Collection, query: SearchQuery) -> np.ndarray:
        if query.vector is not None:
            return _unit(np.array(query.vector), collection.dimensions)
        return self.embed_query(collection, query.text or "")

    def embed_query(self, collection: Collection, text: str) -> np.ndarray:
        """The query's vector from the collection's model."""
        if self.embedder.model != collection.model:
            raise Conflict(
                f"Collection '{collection.name}' was embedded with {collection.model}, but this "
                f"server embeds with {self.embedder.model}; its vectors cannot be compared.",
                param="collection",
            )
        return self.embedder.embed([text])[0]

    def _keyword(self, collection: Collection, text: str, documents: list[int] | None) -> Ranking:
        """The DEPTH best BM25 matches, only from ``documents`` when given, ties by id."""
        return _top(self.store.keyword_search(collection.id, text, DEPTH, documents))

    def _allowed(self, collection: Collection, filters: Filters) -> list[int] | None:
        """The documents a filter allows (None when there is no filter)."""
        if not filters:
            return None
        return self.store.filter_documents(collection.id, filters)

    def _semantic(
        self, collection: Collection, vector: np.ndarray, documents: list[int] | None
    ) -> Ranking:
        """The DEPTH nearest chunks to ``vector``, only from ``documents`` when given."""
        if documents is None:
            return self._nearest(collection.id, vector, DEPTH)
        chunk_ids = self.store.document_chunk_ids(documents)
        if len(chunk_ids) <= EXACT_LIMIT:
            # Few enough to score them all: exact, however selective the filter is.
            ids, vectors = self.store.chunk_vectors(collection.id, chunk_ids)
            return top(ids, vectors @ vector, DEPTH)
        # Over-fetch in proportion to what the filter keeps, then drop the rest.
        depth = min(collection.chunks, math.ceil(DEPTH * collection.chunks / len(chunk_ids)))
        keep = set(chunk_ids)
        return [hit for hit in self._nearest(collection.id, vector, depth) if hit[0] in keep][
            :DEPTH
        ]

    def _nearest(self, collection_id: int, vector: np.ndarray, k: int) -> Ranking:
        """The k nearest chunks in the index, best first, ties by id."""
        scores, ids = self.indexes.search(collection_id, vector[None, :], k)
        found = ids[0] >= 0
        return top(ids[0][found], scores[0][found], k)

    def _rank(
        self, query: SearchQuery, semantic: Ranking, keyword: Ranking, weight: float | None
    ) -> list[_Ranked]:
        """Every candidate, fused and ordered, grouped by document if asked."""
        chunk_signals = (_signals(semantic), _signals(keyword))
        if query.group_by == "chunk":
            return _order(query.mode, *chunk_signals, weight)
        owners = self.store.chunk_documents({i for i, _ in semantic + keyword})
        documents = _order(
            query.mode,
            _signals(_best_per(semantic, owners)),
            _signals(_best_per(keyword, owners)),
            weight,
        )
        # Each document shows its best chunk by the same scoring, not by one ranking alone.
        chunks = _order(query.mode, *chunk_signals, weight)
        best_chunk: dict[int, int] = {}
        for item in chunks:
            if item.id in owners:  # else deleted since it was ranked
                best_chunk.setdefault(owners[item.id], item.id)
        return [
            _Ranked(
                item.id, item.score, item.semantic, item.keyword, item.fused, best_chunk[item.id]
            )
            for item in documents
        ]

    def _hits(
        self,
        collection_id: int,
        query: SearchQuery,
        page: list[_Ranked],
        cosines: dict[int, float],
        weight: float | None,
    ) -> list[Hit]:
        """Hits with their documents, chunks, snippets and cosine similarities."""
        chunks = self.store.get_chunks_by_id(item.chunk_id for item in page)
        documents = self.store.get_documents_by_id({c.document_id for c in chunks.values()})
        texts = {chunk_id: chunk.text for chunk_id, chunk in chunks.items()}
        marked = (
            self.store.highlight(collection_id, query.text, texts, OPEN, CLOSE)
            if query.text
            else {}
        )
        return [
            Hit(
                rank=query.offset + n,
                score=item.score,
                document=documents[chunks[item.chunk_id].document_id],
                chunk=chunks[item.chunk_id],
                snippet=snippet(chunks[item.chunk_id].text, marked.get(item.chunk_id)),
                semantic=item.semantic,
                keyword=item.keyword,
                fused=item.fused,
                similarity=cosines.get(item.chunk_id),
                keyword_weight=weight,
            )
            for n, item in enumerate(page, 1)
            if item.chunk_id in chunks  # deleted since it was ranked
        ]

    # -- neighbours -------------------------------------------------------------------------

    def nearest(
        self,
        collection_name: str,
        k: int,
        text: str | None = None,
        vector: list[float] | None = None,
        group_by: str = "chunk",
        filters: Filters | None = None,
    ) -> tuple[list[Neighbor], str | None]:
        """Stored chunks (or documents) nearest to a text or a vector, and a note if empty."""
        if (text is None) == (vector is None):
            raise BadRequest("Send exactly one of 'text' and 'vector'.", param="text")
        if text is not None and not text.strip():
            raise BadRequest("'text' is empty: send some words.", param="text")
        self.limits.check(text or "", filters, param="text")
        collection = self.store.get_collection(collection_name)
        if not collection.chunks:
            return [], empty_message(collection)
        target = self.embed_query(collection, text) if text is not None else np.array(vector)
        return self.neighbors(collection, target, k, group_by, filters=filters), None

    def neighbors(
        self,
        collection: Collection,
        vector: np.ndarray,
        k: int,
        group_by: str = "chunk",
        exclude_chunks: frozenset[int] = frozenset(),
        filters: Filters | None = None,
    ) -> list[Neighbor]:
        """The k stored chunks (or documents, by their best chunk) nearest to ``vector``."""
        check_choice("group_by", group_by, GROUPS)
        check_k(k)
        vector = _unit(vector, collection.dimensions)
        if filters:
            candidates = self._semantic(collection, vector, self._allowed(collection, filters))
        else:
            candidates = self._nearest(collection.id, vector, DEPTH + len(exclude_chunks))
        ranking = [hit for hit in candidates if hit[0] not in exclude_chunks]
        owners = self.store.chunk_documents((i for i, _ in ranking))
        ranking = [hit for hit in ranking if hit[0] in owners]  # deleted since indexed
        if group_by == "document":
            best: dict[int, tuple[int, float]] = {}
            for chunk_id, score in ranking:
                best.setdefault(owners[chunk_id], (chunk_id, score))
            ranking = list(best.values())
        ranking = ranking[:k]
        chunks = self.store.get_chunks_by_id(i for i, _ in ranking)
        documents = self.store.get_documents_by_id({owners[i] for i, _ in ranking})
        return [
            Neighbor(score, documents[owners[chunk_id]], chunks[chunk_id])
            for chunk_id, score in ranking
            if chunk_id in chunks
        ]

    def similar_documents(self, document_id: int, k: int) -> list[Neighbor]:
        """Documents most like this one: nearest to the normalised mean of its chunk vectors."""
        document = self.store.get_document(document_id)
        collection = self.store.get_collection_by_id(document.collection_id)
        chunk_ids = [chunk.id for chunk in self.store.get_chunks(document_id)]
        _, vectors = self.store.chunk_vectors(collection.id, chunk_ids)
        if not len(vectors):
            return []
        # Excluding its chunks (rather than filtering the document out afterwards) also widens
        # the search by their number, so they never crowd out the other documents.
        return self.neighbors(
            collection, vectors.mean(axis=0), k, "document", exclude_chunks=frozenset(chunk_ids)
        )

    def chunk_neighbors(self, chunk_id: int, k: int) -> list[Neighbor]:
        """Chunks most like this one (from any document, this one included), itself excluded."""
        chunk = self.store.get_chunk(chunk_id)
        collection = self.store.get_collection_by_id(chunk.collection_id)
        _, vectors = self.store.chunk_vectors(collection.id, [chunk_id])
        return self.neighbors(collection, vectors[0], k, exclude_chunks=frozenset({chunk_id}))


class _Ranked(NamedTuple):
    """A ranked id (document or chunk) with its signals and the chunk that represents it (a
    tuple, like ``Signal``: one per candidate)."""

    id: int
    score: float
    semantic: Signal | None
    keyword: Signal | None
    fused: float | None
    chunk_id: int


def top(ids: np.ndarray, scores: np.ndarray, k: int) -> Ranking:
    """The k best (id, score) pairs, best first, ties broken by the lower id."""
    order = np.lexsort((ids, -scores))[:k]
    return [(int(ids[i]), float(scores[i])) for i in order]


def _top(ranking: Ranking) -> Ranking:
    """A ranking as DEPTH (id, score) pairs, ties broken by the lower id as everywhere else."""
    return top(np.array([i for i, _ in ranking]), np.array([x for _, x in ranking]), DEPTH)


def empty_message(collection: Collection) -> str:
    """What to tell someone searching a collection with nothing in it."""
    return (
        f"Collection '{collection.name}' has no documents yet: add some with POST /api/documents, "
        "then search again."
    )


def _order(
    mode: str, semantic: dict[int, Signal], keyword: dict[int, Signal], weight: float | None
) -> list[_Ranked]:
    """Ids from either ranking by the mode's score (hybrid: keyword counts ``weight``), best
    first, ties by id."""
    if mode == "semantic":
        ranked = [_Ranked(key, s.score, s, None, None, key) for key, s in semantic.items()]
    elif mode == "keyword":
        ranked = [_Ranked(key, k.score, None, k, None, key) for key, k in keyword.items()]
    else:
        fused = fuse(semantic, keyword, weight or 0.0)
        ranked = [
            _Ranked(key, score, semantic.get(key), keyword.get(key), score, key)
            for key, score in fused.items()
        ]
    ranked.sort(key=lambda item: (-item.score, item.id))
    return ranked


def _signals(ranking: Ranking) -> dict[int, Signal]:
    """Each id's rank (1-based) and score in a best-first ranking."""
    return {key: Signal(rank, score) for rank, (key, score) in enumerate(ranking, 1)}


def _best_per(ranking: Ranking, owners: dict[int, int]) -> Ranking:
    """A chunk ranking as a document ranking: each document at its best chunk's place."""
    best: dict[int, float] = {}
    for chunk_id, score in ranking:
        if chunk_id in owners:
            best.setdefault(owners[chunk_id], score)
    return list(best.items())


def _unit(vector: np.ndarray, dimensions: int) -> np.ndarray:
    """``vector`` as a unit-length float32 row; BadRequest if it has the wrong size or is zero."""
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    if vector.shape != (dimensions,):
        raise BadRequest(
            f"'vector' must have {dimensions} numbers (the collection's dimensions), "
            f"got {vector.shape[0]}.",
            param="vector",
        )
    norm = float(np.linalg.norm(vector))
    if not math.isfinite(norm) or norm == 0:
        raise BadRequest("'vector' must be finite and not all zeros.", param="vector")
    return vector / norm
