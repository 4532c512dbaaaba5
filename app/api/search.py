"""Routes for search, "more like this", nearest neighbours and text similarity."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from app.api.auth import require_key
from app.api.deps import ChunkId, DocumentId, EmbedderDep, RowId, SearcherDep, SettingsDep
from app.api.documents import document_json
from app.api.filters import FiltersIn
from app.errors import BadRequest
from app.jsonvalues import bounded
from app.search import Hit, Neighbor, Page, SearchQuery
from app.search.query import MAX_RESULTS
from app.search.similarity import similarity_matrix
from app.settings import Settings
from app.store.records import Chunk, Document

router = APIRouter(dependencies=[Depends(require_key)], tags=["search"])


class SearchIn(BaseModel):
    """A search request."""

    # A misspelt field (say 'mdoe') must fail loudly rather than search with the default.
    model_config = ConfigDict(extra="forbid")

    query: StrictStr | None = Field(None, description="What to search for, in plain words.")
    vector: list[float] | None = Field(
        None,
        description="Search by this vector instead of 'query' (semantic mode), e.g. one from "
        "/v1/embeddings; as many numbers as the collection's dimensions.",
    )
    mode: StrictStr = Field("hybrid", description="'hybrid', 'semantic' or 'keyword'.")
    k: StrictInt = Field(10, description=f"Hits per page (offset + k at most {MAX_RESULTS}).")
    offset: StrictInt = Field(0, description="Hits to skip, for the next pages.")
    collection: StrictStr = "default"
    group_by: StrictStr = Field(
        "document", description="'document' (one hit per document) or 'chunk'."
    )
    filters: FiltersIn = Field(default_factory=FiltersIn)
    min_score: StrictFloat | StrictInt | None = Field(
        None, description="Least cosine similarity (-1 to 1) a hit's chunk must have."
    )


class NeighborsIn(BaseModel):
    """Stored chunks or documents nearest to a text or a vector."""

    model_config = ConfigDict(extra="forbid")

    text: StrictStr | None = None
    vector: list[float] | None = None
    k: StrictInt = 10
    collection: StrictStr = "default"
    group_by: StrictStr = Field("chunk", description="'chunk' or 'document'.")
    filters: FiltersIn = Field(default_factory=FiltersIn)


class SimilarityIn(BaseModel):
    """Two texts (``a`` and ``b``), or a list of texts for the full matrix."""

    model_config = ConfigDict(extra="forbid")

    a: StrictStr | None = None
    b: StrictStr | None = None
    texts: list[StrictStr] | None = None


HIT_DOCUMENT_FIELDS = ("id", "title", "external_id", "source_name", "source_type", "metadata")


def hit_document_json(document: Document) -> dict[str, Any]:
    """The fields of a document a hit shows: a part of ``document_json``."""
    body = document_json(document)
    return {name: body[name] for name in HIT_DOCUMENT_FIELDS}


def chunk_json(chunk: Chunk, max_chars: int) -> dict[str, Any]:
    """The fields of a chunk a hit shows, its text cut at ``max_chars``."""
    return {
        "id": chunk.id,
        "seq": chunk.seq,
        "section": chunk.section,
        "text": chunk.text[:max_chars],
        "text_truncated": len(chunk.text) > max_chars,
        "start": chunk.start,
        "end": chunk.end,
    }


def hit_json(hit: Hit, max_chars: int) -> dict[str, Any]:
    """One search hit as JSON."""
    return {
        "rank": hit.rank,
        "score": hit.score,
        "similarity": hit.similarity,
        "document": hit_document_json(hit.document),
        "chunk": chunk_json(hit.chunk, max_chars),
        "snippet": hit.snippet,
        "explanation": {
            "semantic": hit.semantic and {"rank": hit.semantic.rank, "score": hit.semantic.score},
            "keyword": hit.keyword and {"rank": hit.keyword.rank, "score": hit.keyword.score},
            "fused": hit.fused,
            "keyword_weight": hit.keyword_weight,
        },
    }


def neighbors_json(neighbors: list[Neighbor], settings: Settings) -> list[dict[str, Any]]:
    """Neighbours as JSON, within the response size limit."""
    found = [
        {
            "score": neighbor.score,
            "document": hit_document_json(neighbor.document),
            "chunk": chunk_json(neighbor.chunk, settings.max_hit_chars),
        }
        for neighbor in neighbors
    ]
    return bounded(found, settings.max_response_bytes)


def page_json(body: SearchIn, page: Page, settings: Settings) -> dict[str, Any]:
    """A page of search results as JSON; cut short (with a message) past the size limit."""
    hits = [hit_json(hit, settings.max_hit_chars) for hit in page.hits]
    shown = bounded(hits, settings.max_response_bytes)
    message = page.message
    if len(shown) < len(hits):
        message = (
            f"Only {len(shown)} of {len(hits)} hits fit in one response "
            f"(EMBEDSEARCH_MAX_RESPONSE_BYTES); ask for the rest with 'offset' "
            f"{body.offset + len(shown)}."
        )
    return {
        "object": "search",
        "query": body.query,
        "mode": "semantic" if body.vector is not None else body.mode,
        "collection": body.collection,
        "group_by": body.group_by,
        "k": body.k,
        "offset": body.offset,
        "total": page.total,
        "has_more": body.offset + len(shown) < page.total,
        "message": message,
        "hits": shown,
    }


@router.post("/api/search")
def search(body: SearchIn, searcher: SearcherDep, settings: SettingsDep) -> dict[str, Any]:
    """Search a collection (hybrid by default); one hit per document unless grouped by chunk."""
    query = SearchQuery(
        body.query,
        body.mode,
        body.k,
        body.offset,
        body.group_by,
        body.filters.domain(),
        body.vector,
        body.min_score,
    )
    return page_json(body, searcher.search(body.collection, query), settings)


@router.get("/api/search")
def search_get(
    searcher: SearcherDep,
    settings: SettingsDep,
    q: Annotated[str, Query(description="What to search for.")],
    mode: str = "hybrid",
    k: int = 10,
    offset: int = 0,
    collection: str = "default",
    group_by: str = "document",
    document_id: Annotated[list[RowId] | None, Query(description="Only these documents.")] = None,
    source_type: Annotated[list[str] | None, Query(description="Only these types.")] = None,
) -> dict[str, Any]:
    """Search with query parameters (metadata filters need POST)."""
    filters = FiltersIn(document_ids=document_id or [], source_types=source_type or [])
    body = SearchIn(
        query=q,
        mode=mode,
        k=k,
        offset=offset,
        collection=collection,
        group_by=group_by,
        filters=filters,
    )
    return search(body, searcher, settings)


@router.get("/api/documents/{document_id}/similar")
def similar_documents(
    document_id: DocumentId, searcher: SearcherDep, settings: SettingsDep, k: int = 10
) -> dict[str, Any]:
    """Documents most like this one (itself excluded)."""
    neighbors = searcher.similar_documents(document_id, k)
    return {"object": "list", "data": neighbors_json(neighbors, settings)}


@router.get("/api/chunks/{chunk_id}/neighbors")
def chunk_neighbors(
    chunk_id: ChunkId, searcher: SearcherDep, settings: SettingsDep, k: int = 10
) -> dict[str, Any]:
    """Chunks most like this one (itself excluded)."""
    neighbors = searcher.chunk_neighbors(chunk_id, k)
    return {"object": "list", "data": neighbors_json(neighbors, settings)}


@router.post("/api/neighbors")
def neighbors(body: NeighborsIn, searcher: SearcherDep, settings: SettingsDep) -> dict[str, Any]:
    """Stored chunks (or documents) nearest to a text or a vector."""
    found, message = searcher.nearest(
        body.collection, body.k, body.text, body.vector, body.group_by, body.filters.domain()
    )
    return {"object": "list", "data": neighbors_json(found, settings), "message": message}


@router.post("/api/similarity")
def similarity(body: SimilarityIn, embedder: EmbedderDep) -> dict[str, Any]:
    """Cosine similarity of two texts, or the full matrix of a list of texts."""
    if body.texts is not None and body.a is None and body.b is None:
        texts, pair = body.texts, False
    elif body.a is not None and body.b is not None and body.texts is None:
        texts, pair = [body.a, body.b], True
    else:
        raise BadRequest("Send either 'a' and 'b', or 'texts' (a list).", param="texts")
    matrix = similarity_matrix(embedder, texts)
    if pair:
        return {"object": "similarity", "model": embedder.model, "similarity": float(matrix[0, 1])}
    return {"object": "similarity_matrix", "model": embedder.model, "matrix": matrix.tolist()}
