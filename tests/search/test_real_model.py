"""Search with the real model on a handful of real SciFact claims and abstracts."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest

from app.embeddings.models import bundled_minilm
from app.embeddings.torch_encoder import SentenceTransformerEncoder
from app.index.faiss import FaissFiles
from app.index.indexes import Indexes
from app.search import Searcher, SearchQuery
from app.search.query import QueryLimits
from app.settings import Settings
from app.store.database import Store
from app.store.records import ChunkRecord
from tests.support.datasets import data_dir

SCIFACT = data_dir() / "scifact"
# Test-split claims and the abstract that supports each one.
CASES = {
    "1": "31715818",
    "3": "14717500",
    "5": "13734012",
    "13": "1606628",
    "36": "5152028",
    "42": "18174210",
}
DISTRACTORS = 30

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(
        not SCIFACT.exists(), reason=f"no SciFact data at {SCIFACT} (see tests/support/datasets.py)"
    ),
]


class RealEmbedder:
    """The bundled model, behind the Embedder interface."""

    model = "all-MiniLM-L6-v2"
    backend = "torch"

    def __init__(self) -> None:
        self.encoder = SentenceTransformerEncoder(bundled_minilm())

    def embed(self, texts: list[str]) -> np.ndarray:
        tokens = [ids[: self.encoder.max_tokens] for ids in self.encoder.tokenize(texts)]
        return self.encoder.encode(tokens)


@cache
def records(name: str) -> dict[str, dict]:
    with (SCIFACT / name).open() as f:
        return {row["_id"]: row for row in map(json.loads, f)}


@pytest.fixture(scope="module")
def searcher() -> Searcher:
    corpus = records("corpus.jsonl")
    wanted = list(CASES.values()) + [i for i in corpus if i not in CASES.values()][:DISTRACTORS]
    embedder = RealEmbedder()
    store = Store(None)
    indexes = Indexes(store, FaissFiles(None))
    collection = store.ensure_collection("default", embedder.model, 384, embedder.backend)
    for doc_id in wanted:
        doc = corpus[doc_id]
        text = f"{doc['title']} {doc['text']}"
        # Sentences as chunks: several per document, like real ingestion.
        pieces = [p.strip() + "." for p in text.split(". ") if p.strip()]
        chunks, start = [], 0
        for seq, piece in enumerate(pieces):
            chunks.append(ChunkRecord(seq, piece, start, start + len(piece), 10))
            start += len(piece) + 1
        vectors = embedder.embed(pieces)
        fields = {
            "title": doc["title"],
            "source_name": doc_id,
            "source_type": "json",
            "size": len(text),
            "content_hash": doc_id,
            "external_id": doc_id,
            "text": text,
        }
        added = store.add_document(collection.id, fields, chunks, vectors)
        indexes.add(collection.id, np.array(added.chunk_ids), vectors)
    return Searcher(store, indexes, embedder, QueryLimits.of(Settings(_env_file=None)))


@pytest.mark.parametrize("mode", ["semantic", "keyword", "hybrid"])
def test_claims_find_their_abstracts(searcher: Searcher, mode: str) -> None:
    claims = records("queries.jsonl")
    top3 = 0
    for query_id, doc_id in CASES.items():
        page = searcher.search("default", SearchQuery(claims[query_id]["text"], mode, k=3))
        top3 += doc_id in [hit.document.external_id for hit in page.hits]
    assert top3 >= len(CASES) - 1


def test_hybrid_hits_explain_themselves(searcher: Searcher) -> None:
    claims = records("queries.jsonl")
    firsts = [
        searcher.search("default", SearchQuery(claims[query_id]["text"], k=1)).hits[0]
        for query_id in CASES
    ]
    right = [
        hit
        for hit, doc_id in zip(firsts, CASES.values(), strict=True)
        if hit.document.external_id == doc_id
    ]
    assert len(right) >= len(CASES) // 2
    for hit in right:
        assert hit.semantic is not None and hit.fused is not None
        # An abstract can share no word with its claim (claim 1): found by meaning alone.
        if hit.keyword is not None:
            assert "<mark>" in hit.snippet
    assert sum(hit.keyword is not None for hit in right) >= len(CASES) // 2
