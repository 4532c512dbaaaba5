"""The Qdrant index backend: one Qdrant collection per embedsearch collection.

Each point is a chunk under its SQLite id: its vector (cosine) and a payload with the chunk
text (a BM25 text index), its document id, source type and metadata (keyword indexes), so the
semantic and the keyword candidates of a search come from Qdrant in one batched request under
one filter. SQLite stays the source of truth: every write here is an idempotent upsert or delete
by chunk id, and ``Indexes`` repairs whatever a failure left behind.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
from qdrant_client import QdrantClient, models

from app.errors import IndexSchemaError, IndexUnavailable
from app.index.base import IndexLost, Ranking, VectorIndex
from app.store.database import Store
from app.store.filters import Filters
from app.store.records import Collection, Scalar

VECTOR = "dense"
TEXT = "text"
VERSION = "embedsearch_version"  # collection metadata key: the store version it reflects
BATCH = 256  # points per upsert request
PAGE = 10_000  # ids per scroll request

T = TypeVar("T")


def metadata_pairs(metadata: dict[str, Any]) -> list[str]:
    """``key=<JSON value>`` for each scalar metadata value, compared as SQLite's json_each does.

    One keyword index over these strings serves an equality filter on any key, whatever
    characters the key holds (a payload path would read dots as nesting).
    """
    return [pair_of(key, value) for key, value in metadata.items() if _scalar(value)]


def pair_of(key: str, value: Scalar) -> str:
    """The keyword a metadata ``key`` holding ``value`` is indexed under."""
    if isinstance(value, bool):
        value = int(value)  # json_each reads true as 1
    elif isinstance(value, float) and value.is_integer():
        value = int(value)  # SQLite compares 2.0 and 2 as equal
    return f"{key}={json.dumps(value)}"


def qdrant_filter(filters: Filters) -> models.Filter | None:
    """The Qdrant filter allowing what a search filter allows (None for no condition).

    Equality and ``$in`` on metadata become keyword matches on ``metadata_pairs``; a filter with
    any other operator raises NotTranslated (the database then picks the documents).
    """
    must: list[models.Condition] = []
    if filters.document_ids:
        ids = list(filters.document_ids)
        must.append(models.FieldCondition(key="document_id", match=models.MatchAny(any=ids)))
    if filters.source_types:
        types = list(filters.source_types)
        must.append(models.FieldCondition(key="source_type", match=models.MatchAny(any=types)))
    for condition in filters.conditions:
        if condition.op == "$eq":
            pair = pair_of(condition.field, condition.value)
            match: models.Match = models.MatchValue(value=pair)
        elif condition.op == "$in":
            match = models.MatchAny(any=[pair_of(condition.field, v) for v in condition.value])
        else:
            raise NotTranslated(condition.op)
        must.append(models.FieldCondition(key="metadata", match=match))
    return models.Filter(must=must) if must else None


class NotTranslated(Exception):
    """A filter condition with no Qdrant form here."""


class QdrantIndexes:
    """Qdrant collections named ``<prefix><collection id>`` on one client (server or local)."""

    name = "qdrant"

    def __init__(
        self,
        client: QdrantClient,
        store: Store,
        *,
        where: str,
        prefix: str = "embedsearch_",
        shards: int = 1,
        replicas: int = 1,
        local_mode: bool = False,
    ) -> None:
        self.client = client
        self.store = store  # the chunk texts and document fields of the payloads
        self.where = where  # the URL or path, for messages
        self.prefix = prefix
        self.shards = shards
        self.replicas = replicas
        # The client's local mode takes only the default tokenizer (no stemming) and ignores
        # (warning about) every other payload index.
        self.local_mode = local_mode

    def collection_name(self, collection_id: int) -> str:
        """The Qdrant collection of an embedsearch collection."""
        return f"{self.prefix}{collection_id}"

    def open(self, collection: Collection) -> QdrantIndex:
        """The collection's Qdrant collection; IndexLost if absent, IndexSchemaError if foreign."""
        name = self.collection_name(collection.id)
        if not self.call(self.client.collection_exists, name):
            raise IndexLost(f"Qdrant collection {name} does not exist.", "missing")
        config = self.call(self.client.get_collection, name).config
        vectors = config.params.vectors
        params = vectors.get(VECTOR) if isinstance(vectors, dict) else None
        if params is None or (params.size, params.distance) != (
            collection.dimensions,
            models.Distance.COSINE,
        ):
            found = "no vector named 'dense'" if params is None else f"{params.size} dimensions, "
            found += "" if params is None else f"{params.distance.value} distance"
            raise IndexSchemaError(
                f"Qdrant collection {name} at {self.where} holds {found}, but collection "
                f"'{collection.name}' has {collection.dimensions}-dimensional cosine vectors. "
                f"Run `embedsearch reindex` to rebuild it from SQLite, or set "
                f"EMBEDSEARCH_QDRANT_PREFIX to keep this installation's collections apart."
            )
        version = (config.metadata or {}).get(VERSION)
        return QdrantIndex(self, collection.id, collection.dimensions, version)

    def create(self, collection: Collection) -> QdrantIndex:
        """A new empty Qdrant collection with the vector, text and filter indexes."""
        name = self.collection_name(collection.id)
        if self.call(self.client.collection_exists, name):
            self.call(self.client.delete_collection, name)
        self.call(
            self.client.create_collection,
            name,
            vectors_config={
                VECTOR: models.VectorParams(
                    size=collection.dimensions, distance=models.Distance.COSINE
                )
            },
            shard_number=self.shards,
            replication_factor=self.replicas,
            metadata={VERSION: None},
        )
        for field, schema in self._payload_indexes().items():
            self.call(self.client.create_payload_index, name, field, schema)
        return QdrantIndex(self, collection.id, collection.dimensions, None)

    def snapshot(self, index: VectorIndex) -> VectorIndex:
        """The index itself: saving records its version, and its points are already durable."""
        return index

    def save(self, collection: Collection, index: VectorIndex) -> None:
        """Record the store version the collection reflects (points are durable on upsert)."""
        self.call(
            self.client.update_collection,
            self.collection_name(collection.id),
            metadata={VERSION: index.version},
        )

    def candidates(
        self,
        index: QdrantIndex,
        vector: np.ndarray | None,
        text: str | None,
        filters: Filters,
        depth: int,
    ) -> tuple[Ranking, Ranking]:
        """The ``depth`` best semantic and BM25 matches under the filter, in one request."""
        try:
            return index.candidates(vector, text, qdrant_filter(filters), depth)
        except NotTranslated:
            # The database picks the documents; their ids become the Qdrant filter.
            allowed = self.store.filter_documents(index.collection_id, filters)
            if not allowed:
                return [], []
            where = qdrant_filter(Filters(document_ids=tuple(allowed)))
            return index.candidates(vector, text, where, depth)

    def close(self) -> None:
        """Close the client (and release an embedded store's lock)."""
        self.client.close()

    def describe(self, collection_id: int) -> str:
        """The Qdrant collection and where it lives."""
        return f"{self.collection_name(collection_id)} at {self.where}"

    def call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call the client; IndexUnavailable (503) if Qdrant cannot be reached or times out."""
        with self.unavailable():
            return method(*args, **kwargs)

    @contextmanager
    def unavailable(self) -> Iterator[None]:
        """Turn a failure to reach Qdrant into IndexUnavailable."""
        try:
            yield
        except (IndexLost, IndexSchemaError):
            raise
        except Exception as error:  # the client raises many types for one cause
            if not _unreachable(error):
                raise
            raise IndexUnavailable(
                f"The Qdrant index at {self.where} is unavailable ({type(error).__name__}: "
                f"{error}). Searches answer again once it is reachable; documents added "
                "meanwhile are kept and indexed when it is back."
            ) from error

    def _payload_indexes(self) -> dict[str, models.PayloadSchemaType | models.TextIndexParams]:
        """The payload indexes: the text for BM25, and every field a filter can name."""
        text = models.TextIndexParams(
            type=models.TextIndexType.TEXT,
            tokenizer=models.TokenizerType.WORD,
            lowercase=True,
            scoring=True,
        )
        if self.local_mode:
            return {TEXT: text}
        text.stemmer = models.SnowballParams(
            type=models.Snowball.SNOWBALL, language=models.SnowballLanguage.ENGLISH
        )
        return {
            TEXT: text,
            "document_id": models.PayloadSchemaType.INTEGER,
            "source_type": models.PayloadSchemaType.KEYWORD,
            "metadata": models.PayloadSchemaType.KEYWORD,
        }


class QdrantIndex:
    """One collection's points in Qdrant, as a VectorIndex (plus hybrid candidates)."""

    def __init__(
        self, backend: QdrantIndexes, collection_id: int, dimensions: int, version: int | None
    ) -> None:
        self.backend = backend
        self.collection_id = collection_id
        self.name = backend.collection_name(collection_id)
        self.dimensions = dimensions
        self.version = version

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Upsert the chunks under these ids, with their payloads from the store."""
        store = self.backend.store
        chunks = store.get_chunks_by_id(int(i) for i in ids)
        documents = store.get_documents_by_id({chunk.document_id for chunk in chunks.values()})
        points = []
        for chunk_id, vector in zip(ids, np.asarray(vectors, dtype=np.float32), strict=True):
            chunk = chunks.get(int(chunk_id))
            if chunk is None:
                continue  # deleted since: nothing to index
            document = documents[chunk.document_id]
            payload = {
                TEXT: chunk.text,
                "document_id": document.id,
                "source_type": document.source_type,
                "metadata": metadata_pairs(document.metadata or {}),
            }
            points.append(
                models.PointStruct(
                    id=int(chunk_id), vector={VECTOR: vector.tolist()}, payload=payload
                )
            )
        for start in range(0, len(points), BATCH):
            self.backend.call(
                self.backend.client.upsert, self.name, points[start : start + BATCH], wait=True
            )

    def remove(self, ids: np.ndarray) -> int:
        """Delete the points under these ids; returns how many were present."""
        points = [int(i) for i in ids]
        if not points:
            return 0
        present = self.backend.call(
            self.backend.client.retrieve, self.name, points, with_payload=False, with_vectors=False
        )
        self.backend.call(
            self.backend.client.delete, self.name, models.PointIdsList(points=points), wait=True
        )
        return len(present)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest points per query as (scores, ids), -1 ids past the end."""
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self.dimensions)
        requests = [
            models.QueryRequest(query=query.tolist(), using=VECTOR, limit=k) for query in queries
        ]
        responses = self.backend.call(self.backend.client.query_batch_points, self.name, requests)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        found = np.full((len(queries), k), -1, dtype=np.int64)
        for row, response in enumerate(responses):
            for column, point in enumerate(response.points[:k]):
                scores[row, column], found[row, column] = _score(point.score), int(point.id)
        return scores, found

    def candidates(
        self,
        vector: np.ndarray | None,
        text: str | None,
        where: models.Filter | None,
        depth: int,
    ) -> tuple[Ranking, Ranking]:
        """The ``depth`` best semantic and BM25 matches under one filter, in one request."""
        requests = []
        if vector is not None:
            requests.append(
                models.QueryRequest(
                    query=np.asarray(vector, np.float32).tolist(),
                    using=VECTOR,
                    filter=where,
                    limit=depth,
                )
            )
        if text is not None:
            requests.append(
                models.QueryRequest(
                    query=models.TextQuery(text=text), using=TEXT, filter=where, limit=depth
                )
            )
        responses = self.backend.call(self.backend.client.query_batch_points, self.name, requests)
        rankings = [[(int(p.id), _score(p.score)) for p in r.points] for r in responses]
        semantic = rankings.pop(0) if vector is not None else []
        keyword = rankings.pop(0) if text is not None else []
        return semantic, keyword

    def ids(self) -> np.ndarray:
        """Every point id in the collection."""
        found: list[int] = []
        offset = None
        while True:
            points, offset = self.backend.call(
                self.backend.client.scroll,
                self.name,
                limit=PAGE,
                offset=offset,
                with_payload=False,
                with_vectors=False,
            )
            found += [int(point.id) for point in points]
            if offset is None:
                return np.array(found, dtype=np.int64)

    def __len__(self) -> int:
        """How many points the collection holds."""
        return self.backend.call(self.backend.client.count, self.name, exact=True).count


def _scalar(value: object) -> bool:
    """Whether a metadata filter value is a plain equality (what ``metadata_pairs`` indexes)."""
    return value is None or isinstance(value, str | int | float | bool)


def _score(score: float) -> float:
    """A score to 6 decimals: the local mode's sums for equal vectors differ in their last bits
    from point to point and call to call, which would reorder ties between pages."""
    return round(float(score), 6)


def _unreachable(error: Exception) -> bool:
    """Whether ``error`` means Qdrant could not be reached or did not answer in time."""
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(error, UnexpectedResponse):
        return (error.status_code or 0) >= 500
    return isinstance(error, ResponseHandlingException | ConnectionError | TimeoutError) or (
        type(error).__module__.startswith(("grpc", "httpx", "httpcore"))
    )
