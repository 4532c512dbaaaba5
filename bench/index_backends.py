"""The index backends side by side: FAISS + FTS5, Qdrant's client local mode, Qdrant's engine.

SciFact: a real server (onnx-int8) ingests the corpus once on FAISS; ``embedsearch
migrate-index`` copies its vectors (nothing embedded again) to Qdrant embedded at a path, in the
client's local mode (``--quick`` only: it scores every chunk in Python per keyword query) and in
the real engine (qdrant-edge-py); each then answers every test query with qrels through
POST /api/search per mode: document nDCG@10, and nDCG less FAISS's.

Latency at scale: 50k synthetic chunks (seeded unit vectors, texts of words from a Zipf-like
vocabulary) in one collection on each backend, searched in-process through ``Indexes`` (semantic:
``search``; hybrid: the backend's candidate lists, FTS5 + FAISS on FAISS): p50 per backend and its
ratio to FAISS's, all in one run. ``--quick``: the SciFact subset and 5k chunks. ``--workdir DIR``
keeps the FAISS server's SciFact data, so a later run skips ingesting it.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

from app.cli.admin import migrate_index
from app.index.factory import open_indexes
from app.index.indexes import Indexes
from app.search.search import Filters
from app.settings import Settings
from app.store.database import Store
from app.store.records import ChunkRecord
from bench import ingest, scifact
from bench.runner import Row, within
from tests.support.datasets import dataset
from tests.support.server import running_server

BACKENDS = {  # name: environment of the server
    "faiss": {},
    "qdrant-local": {"EMBEDSEARCH_INDEX_BACKEND": "qdrant"},
    "qdrant-edge": {"EMBEDSEARCH_INDEX_BACKEND": "qdrant", "EMBEDSEARCH_QDRANT_EDGE": "true"},
}
NDCG_TOLERANCE = 0.01  # each Qdrant backend's test nDCG@10 against FAISS's, per mode
SCALE, QUICK_SCALE = 50_000, 5_000
LATENCY_QUERIES = 30
DIMENSIONS = 384
WORDS = 5000  # vocabulary of the synthetic texts


def settings_for(root: Path, name: str) -> Settings:
    """Settings of one backend's copy of the data directory."""
    env = BACKENDS[name]
    return Settings(
        data_dir=root / "data",
        index_backend=env.get("EMBEDSEARCH_INDEX_BACKEND", "faiss"),
        qdrant_path=root / "data" / "qdrant",
        qdrant_edge=env.get("EMBEDSEARCH_QDRANT_EDGE") == "true",
        _env_file=None,
    )


def scifact_run(root: Path, quick: bool) -> dict:
    """nDCG@10 per mode per backend, the corpus ingested once and migrated to the others."""
    corpus = ingest.records()
    data = dataset("scifact")
    queries = {q["_id"]: q["text"] for q in scifact.read_jsonl(data / "queries.jsonl")}
    qrels = scifact.read_qrels(data / "qrels/test.tsv")
    if quick:
        corpus, qrels = scifact.subset(corpus, qrels)
    out: dict = {"documents": len(corpus), "queries": len(qrels), "backends": {}}
    # The local mode scores every chunk in Python per keyword query: minutes on the full set.
    names = list(BACKENDS) if quick else ["faiss", "qdrant-edge"]
    for name in names:
        env = BACKENDS[name]
        home = root / name
        if name != "faiss":
            shutil.rmtree(home, ignore_errors=True)  # a kept workdir's copy from an earlier run
            shutil.copytree(root / "faiss" / "data", home / "data")
            started = time.perf_counter()
            # Still on FAISS with Qdrant configured, as a user migrating would be.
            current = settings_for(home, name).model_copy(update={"index_backend": "faiss"})
            migrate_index(current, Namespace(to="qdrant"))
            out["backends"][name] = {"migrate_s": time.perf_counter() - started}
        else:
            home.mkdir(parents=True, exist_ok=True)
            out["backends"][name] = {}
        server_env = {
            **env,
            "EMBEDSEARCH_QDRANT_PATH": str(home / "data" / "qdrant"),
        }
        with (
            running_server(home, server_env, timeout=900) as (url, proc, _),
            httpx.Client(base_url=url, timeout=600) as client,
        ):
            if name == "faiss" and not scifact.ingested(client, len(corpus)):
                out["ingest"] = ingest.end_to_end(url, proc.pid, corpus, home / "data")
            result = out["backends"][name]
            for mode in scifact.MODES:
                result[mode] = scifact.evaluate(client, queries, qrels, mode)["ndcg@10"]
    return out


def words(rng: np.random.Generator, n: int) -> str:
    """n words drawn from a Zipf-like vocabulary (w0 common, w4999 rare)."""
    ranks = np.minimum(rng.zipf(1.3, n), WORDS) - 1
    return " ".join(f"w{r}" for r in ranks)


def fill(store: Store, count: int) -> tuple[int, list[str]]:
    """A collection of ``count`` synthetic chunks (documents of 10); its id and queries."""
    rng = np.random.default_rng(7)
    collection = store.ensure_collection("scale", "synthetic", DIMENSIONS, "synthetic")
    vectors = rng.standard_normal((count, DIMENSIONS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for start in range(0, count, 10):
        texts = [words(rng, 60) for _ in range(10)]
        records = [ChunkRecord(i, t, 0, len(t), 60, None) for i, t in enumerate(texts)]
        fields = {
            "title": f"doc {start}",
            "source_name": f"doc{start}.txt",
            "source_type": "text/plain",
            "size": 1,
            "content_hash": f"h{start}",
            "text": "\n".join(texts),
        }
        store.add_document(collection.id, fields, records, vectors[start : start + 10])
    queries = [words(rng, 4) for _ in range(LATENCY_QUERIES)]
    return collection.id, queries


def timed(call: Callable[[int], object], count: int) -> float:
    """Median milliseconds of ``call(i)`` over ``count`` calls, after two warm-ups."""
    call(0), call(1)
    times = []
    for i in range(count):
        start = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(indexes: Indexes, store: Store, collection_id: int, queries: list[str]) -> dict:
    """p50 of a semantic search (k=10) and of a hybrid candidate fetch (300 each) on one backend."""
    vectors = store.chunk_vectors(collection_id, list(range(1, LATENCY_QUERIES * 50, 50)))[1]

    def semantic(i: int) -> object:
        return indexes.search(collection_id, vectors[i % len(vectors)][None, :], 10)

    def hybrid(i: int) -> object:
        vector = vectors[i % len(vectors)]
        if indexes.ranks_text:  # Qdrant: both lists in one request
            return indexes.candidates(collection_id, vector, queries[i], Filters(), 300)
        store.keyword_search(collection_id, queries[i], 300, None)  # FTS5, then FAISS
        return indexes.search(collection_id, vector[None, :], 300)

    return {
        "semantic_p50_ms": timed(semantic, LATENCY_QUERIES),
        "hybrid_p50_ms": timed(hybrid, LATENCY_QUERIES),
    }


def scale_run(root: Path, count: int) -> dict:
    """p50 of semantic and hybrid candidate fetches at ``count`` chunks, per backend."""
    root.mkdir(parents=True, exist_ok=True)
    store = Store(root / "scale.db")
    collection_id, queries = fill(store, count)
    out: dict = {"chunks": count, "backends": {}}
    for name in BACKENDS:
        (root / name).mkdir(parents=True, exist_ok=True)
        indexes = open_indexes(settings_for(root / name, name), store)
        started = time.perf_counter()
        indexes.rebuild(collection_id)
        build = time.perf_counter() - started
        out["backends"][name] = {
            "build_s": build,
            **measure(indexes, store, collection_id, queries),
        }
        indexes.close()
    store.close()
    return out


def run(quick: bool = False, workdir: Path | None = None) -> dict:
    """Both parts, in temporary directories; SciFact's FAISS server data kept under
    ``workdir``/index_backends when given, and reused by later runs."""
    with tempfile.TemporaryDirectory(prefix="bench-index-backends-") as tmp:
        root = Path(tmp)
        kept = (
            workdir / f"index_backends{'-quick' if quick else ''}" if workdir else root / "scifact"
        )
        return {
            "scifact": scifact_run(kept, quick),
            "scale": scale_run(root / "scale", QUICK_SCALE if quick else SCALE),
        }


def rows(result: dict) -> list[Row]:
    """nDCG per mode per backend (Qdrant's against FAISS's), and p50 latency with ratios."""
    sci, scale = result["scifact"], result["scale"]
    n = sci["documents"]
    scope = "" if n > 5000 else f" [{n}-doc subset]"
    out = []
    faiss = sci["backends"]["faiss"]
    for name, r in sci["backends"].items():
        for mode in scifact.MODES:
            out.append(Row(f"{name} SciFact test nDCG@10, {mode}{scope}", r[mode], digits=4))
            if name != "faiss":
                out.append(
                    within(f"{name} - faiss nDCG@10, {mode}", r[mode] - faiss[mode], NDCG_TOLERANCE)
                )
    base = scale["backends"]["faiss"]
    for name, r in scale["backends"].items():
        for kind in ("semantic", "hybrid"):
            p50 = r[f"{kind}_p50_ms"]
            out.append(
                Row(
                    f"{name} {kind} candidates p50 at {scale['chunks']} chunks", p50, "ms", digits=1
                )
            )
            if name != "faiss":
                ratio = p50 / base[f"{kind}_p50_ms"]
                out.append(Row(f"{name} / faiss {kind} p50 (same run)", ratio, "x", digits=1))
        out.append(
            Row(f"{name} index build, {scale['chunks']} chunks", r["build_s"], "s", digits=1)
        )
    return out
