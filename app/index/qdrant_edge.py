"""The real Qdrant engine embedded through qdrant-edge-py, behind the client methods we use.

``QdrantIndexes`` speaks to a ``QdrantClient``; this adapter gives it the same few methods over
one edge shard per collection (a directory each), so an embedded store can run the engine a
server runs (stemming, BM25 over the text index, HNSW) instead of the client's local mode.
Collection metadata (the store version) lives in a JSON file beside each shard.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import qdrant_edge as edge
from qdrant_client import models

DISTANCES = {models.Distance.COSINE: edge.Distance.Cosine}
SCHEMAS = {
    models.PayloadSchemaType.INTEGER: edge.PayloadSchemaType.Integer,
    models.PayloadSchemaType.KEYWORD: edge.PayloadSchemaType.Keyword,
}


class EdgeClient:
    """The QdrantClient methods ``QdrantIndexes`` calls, over edge shards under ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._shards: dict[str, edge.EdgeShard] = {}
        self._lock = threading.Lock()

    def collection_exists(self, name: str) -> bool:
        """Whether the collection's shard directory exists."""
        return (self.path / name / "shard").is_dir()

    def get_collection(self, name: str) -> Any:
        """The collection's vector parameters and metadata, shaped like the client's answer."""
        meta = json.loads((self.path / name / "meta.json").read_text())
        vectors = {
            vector: models.VectorParams(size=size, distance=models.Distance.COSINE)
            for vector, size in meta["vectors"].items()
        }
        params = SimpleNamespace(vectors=vectors)
        return SimpleNamespace(config=SimpleNamespace(params=params, metadata=meta["metadata"]))

    def create_collection(
        self,
        name: str,
        vectors_config: dict[str, models.VectorParams],
        metadata: dict[str, Any] | None = None,
        **cluster: Any,  # shards and replicas: one shard, here
    ) -> bool:
        """A new shard with these dense vectors."""
        config = edge.EdgeConfig(
            vectors={
                vector: edge.EdgeVectorParams(size=p.size, distance=DISTANCES[p.distance])
                for vector, p in vectors_config.items()
            }
        )
        with self._lock:
            self._shards[name] = edge.EdgeShard.create(str(self.path / name / "shard"), config)
        sizes = {vector: p.size for vector, p in vectors_config.items()}
        self._write_meta(name, {"vectors": sizes, "metadata": metadata or {}})
        return True

    def delete_collection(self, name: str) -> bool:
        """Close and remove the shard."""
        with self._lock:
            shard = self._shards.pop(name, None)
        if shard is not None:
            shard.close()
        shutil.rmtree(self.path / name, ignore_errors=True)
        return True

    def update_collection(self, name: str, metadata: dict[str, Any]) -> bool:
        """Merge ``metadata`` into the collection's."""
        meta = json.loads((self.path / name / "meta.json").read_text())
        meta["metadata"] = {**meta["metadata"], **metadata}
        self._shard(name).flush()  # the version recorded must not run ahead of the points
        self._write_meta(name, meta)
        return True

    def create_payload_index(
        self, name: str, field: str, schema: models.PayloadSchemaType | models.TextIndexParams
    ) -> None:
        """Index a payload field (keyword, integer, or text with BM25 scoring)."""
        if isinstance(schema, models.TextIndexParams):
            stemmer = None
            if schema.stemmer is not None:
                stemmer = edge.SnowballParams(edge.SnowballLanguage.English)
            params: Any = edge.TextIndexParams(
                tokenizer=edge.TokenizerType.Word,
                lowercase=schema.lowercase,
                stemmer=stemmer,
                scoring=True,
            )
        else:
            params = SCHEMAS[schema]
        self._shard(name).update(edge.UpdateOperation.create_field_index(field, params))

    def upsert(self, name: str, points: list[models.PointStruct], wait: bool = True) -> None:
        """Insert or replace these points."""
        converted = [edge.Point(p.id, cast(Any, p.vector), p.payload) for p in points]
        self._shard(name).update(edge.UpdateOperation.upsert_points(converted))

    def retrieve(self, name: str, ids: list[Any], **_: Any) -> list[Any]:
        """The points among ``ids`` that exist."""
        return self._shard(name).retrieve(ids, with_payload=False, with_vector=False)

    def delete(self, name: str, selector: models.PointIdsList, wait: bool = True) -> None:
        """Delete these points."""
        self._shard(name).update(edge.UpdateOperation.delete_points(list(selector.points)))

    def scroll(
        self, name: str, limit: int, offset: int | None = None, **_: Any
    ) -> tuple[list[Any], Any]:
        """One page of point ids, and where the next starts."""
        request = edge.ScrollRequest(
            offset=offset, limit=limit, with_payload=False, with_vector=False
        )
        return self._shard(name).scroll(request)

    def count(self, name: str, exact: bool = True) -> Any:
        """How many points the collection holds."""
        return SimpleNamespace(count=self._shard(name).count(edge.CountRequest(exact=exact)))

    def query_batch_points(self, name: str, requests: list[models.QueryRequest]) -> list[Any]:
        """Run the queries as one planned batch."""
        batch = edge.QueryBatchRequest([_query(request) for request in requests])
        return [SimpleNamespace(points=points) for points in self._shard(name).query_batch(batch)]

    def close(self) -> None:
        """Flush and close every open shard."""
        with self._lock:
            shards, self._shards = list(self._shards.values()), {}
        for shard in shards:
            shard.close()

    def _shard(self, name: str) -> edge.EdgeShard:
        """The open shard of a collection."""
        with self._lock:
            if name not in self._shards:
                self._shards[name] = edge.EdgeShard.load(str(self.path / name / "shard"))
            return self._shards[name]

    def _write_meta(self, name: str, meta: dict[str, Any]) -> None:
        """Write the collection's metadata file atomically."""
        tmp = self.path / name / "meta.json.tmp"
        tmp.write_text(json.dumps(meta))
        tmp.replace(self.path / name / "meta.json")


def _query(request: models.QueryRequest) -> edge.QueryRequest:
    """A client query (a dense vector or a text query, with a filter) for the engine."""
    using = request.using or ""
    if isinstance(request.query, models.TextQuery):
        text = request.query.text
        query: Any = edge.TextQuery(using, text if isinstance(text, str) else text.query)
    else:
        query = edge.Query.Nearest(cast(Any, request.query), using=using)
    return edge.QueryRequest(
        limit=request.limit or 10, query=query, filter=_filter(request.filter), with_payload=False
    )


def _filter(where: models.Filter | None) -> edge.Filter | None:
    """The engine's form of a filter of ``must`` match conditions."""
    if where is None:
        return None
    must: list[Any] = []
    for condition in where.must or []:
        if not isinstance(condition, models.FieldCondition):
            raise TypeError(f"Unexpected filter condition {condition!r}.")
        if isinstance(condition.match, models.MatchAny):
            match: Any = edge.MatchAny(condition.match.any)
        elif isinstance(condition.match, models.MatchValue):
            match = edge.MatchValue(condition.match.value)
        else:
            raise TypeError(f"Unexpected match {condition.match!r}.")
        must.append(edge.FieldCondition(condition.key, match=match))
    return edge.Filter(must=must)
