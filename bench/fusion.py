"""Fusion benchmark: nDCG@10 of semantic, keyword and hybrid search, and of fusion variants,
through the app's own search service on three evaluation sets, train and test queries apart.

- **scifact**: BEIR SciFact (5,183 abstracts as title + " " + text; 809 train and 300 test claims).
- **ag_news**: known-item search: each of AG News' 7,600 descriptions is a document, and a news
  title finds its own article (``AG_QUERIES`` titles per split, drawn with a fixed seed).
- **banking77**: each of the 77 intents is a document named by its label ("card arrival"); a
  customer's question finds its intent (20 questions per intent in each split).

Each set is ingested in-process by the app's ingestion (``Ingestor``: its chunking, its store,
its FAISS index) into an in-memory store, then every query goes through ``Searcher.search`` in
each mode: the figures are the app's. The fusion variants (``VARIANTS``) are scored on the
same candidate lists (``Searcher``'s own, grouped by document as a search does), so a variant
can be tried on every set in seconds; tune on ``train``, report ``test``.

Vectors are cached on disk by text and backend (``--cache DIR`` or ``EMBEDSEARCH_FUSION_CACHE``;
default ``data/bench-cache``, outside git): a set is embedded once, later runs take seconds.

    python -m bench.fusion [--cache DIR] [--backend onnx-int8] [--sets scifact,ag_news,banking77]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.embeddings.encoder import Encoder
from app.index.faiss import FaissFiles
from app.index.indexes import Indexes
from app.ingest.extract import json_record
from app.ingest.jobs import Ingestor
from app.ingest.sources import Source
from app.search import Searcher, SearchQuery
from app.search import fusion as fusion_module
from app.search import search as search_module
from app.search.query import QueryLimits, Signal
from app.settings import Settings
from app.store.database import Store
from bench.runner import Row, at_least, markdown, run_alone, within
from bench.scifact import ndcg, read_jsonl, read_qrels
from tests.support.datasets import dataset

CACHE_ENV = "EMBEDSEARCH_FUSION_CACHE"
SETS = ("scifact", "ag_news", "banking77")
MODES = ("semantic", "keyword", "hybrid")
AG_QUERIES = 1000  # titles per split (of 7,600): enough to tell variants apart, quick to run
SCIFACT_TARGET = 0.74  # SciFact test hybrid nDCG@10
BASELINE_TOLERANCE = 0.003  # semantic nDCG@10 of the backend against the baseline's (int8: fp32)


@dataclass
class EvalSet:
    """Documents to ingest, queries, and relevance judgements per split."""

    name: str
    documents: list[dict]  # upload records: {"_id", "title", "text"}
    queries: dict[str, str]
    qrels: dict[str, dict[str, dict[str, int]]]  # split -> query id -> document id -> gain


# -- evaluation sets ------------------------------------------------------------------------


def scifact() -> EvalSet:
    """SciFact as BEIR evaluates it."""
    data = dataset("scifact")
    documents = [
        {"_id": r["_id"], "title": r["title"], "text": f"{r['title']} {r['text']}"}
        for r in read_jsonl(data / "corpus.jsonl")
    ]
    queries = {q["_id"]: q["text"] for q in read_jsonl(data / "queries.jsonl")}
    qrels = {split: read_qrels(data / f"qrels/{split}.tsv") for split in ("train", "test")}
    return EvalSet("scifact", documents, queries, qrels)


def ag_news(per_split: int = AG_QUERIES) -> EvalSet:
    """Known-item search: a title as the query, its own description as the one answer."""
    rows = read_jsonl(dataset("ag_news") / "test.jsonl")
    documents = [{"_id": str(i), "text": r["description"]} for i, r in enumerate(rows)]
    drawn = random.Random(17).sample(range(len(rows)), 2 * per_split)
    queries = {str(i): rows[i]["title"] for i in drawn}
    qrels = {
        "train": {str(i): {str(i): 1} for i in drawn[:per_split]},
        "test": {str(i): {str(i): 1} for i in drawn[per_split:]},
    }
    return EvalSet("ag_news", documents, queries, qrels)


def banking77() -> EvalSet:
    """Questions against intents: each intent a document named by its label."""
    rows = read_jsonl(dataset("banking77") / "test.jsonl")
    names = sorted({r["label_name"] for r in rows})
    documents = [{"_id": name, "text": name.replace("_", " ").replace("?", "")} for name in names]
    queries = {str(i): r["text"] for i, r in enumerate(rows)}
    seen: dict[str, int] = defaultdict(int)
    qrels: dict[str, dict[str, dict[str, int]]] = {"train": {}, "test": {}}
    for i, r in enumerate(rows):  # alternate each intent's questions between the splits
        split = ("train", "test")[seen[r["label_name"]] % 2]
        seen[r["label_name"]] += 1
        qrels[split][str(i)] = {r["label_name"]: 1}
    return EvalSet("banking77", documents, queries, qrels)


BUILDERS: dict[str, Callable[[], EvalSet]] = {
    "scifact": scifact,
    "ag_news": ag_news,
    "banking77": banking77,
}


# -- embedding, cached ----------------------------------------------------------------------


class CachedEmbedder:
    """The real model behind the Embedder interface, with every vector cached on disk by text.

    Each call's new vectors are appended as one ``.npz`` shard under ``cache/<backend>``.
    """

    def __init__(self, encoder: Encoder, model: str, cache: Path, name: str | None = None) -> None:
        self.encoder = encoder
        self.model = model
        self.backend = encoder.backend
        self.name = name or encoder.backend  # of the cache folder: the backend, or a build's file
        self.folder = cache / self.name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.vectors: dict[str, np.ndarray] = {}
        for shard in sorted(self.folder.glob("*.npz")):
            with np.load(shard) as data:
                self.vectors.update(zip(data["keys"].tolist(), data["vectors"], strict=True))

    def embed(self, texts: list[str]) -> np.ndarray:
        """One normalised row per text, computed only for texts not seen before."""
        keys = [_key(text) for text in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self.vectors))
        if missing:
            todo = {k: t for k, t in zip(keys, texts, strict=True) if k in set(missing)}
            self._encode([todo[k] for k in missing], missing)
        return np.stack([self.vectors[k] for k in keys])

    def _encode(self, texts: list[str], keys: list[str]) -> None:
        from app.embeddings.encoder import encode_batches

        ids = [seq[: self.encoder.max_tokens] for seq in self.encoder.tokenize(texts)]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # like lengths pad least
        batches = [[ids[i] for i in order[s : s + 64]] for s in range(0, len(order), 64)]
        vectors = np.concatenate(encode_batches(self.encoder, batches))
        rows = np.empty_like(vectors)
        rows[order] = vectors
        self.vectors.update(zip(keys, rows, strict=True))
        name = f"{time.time_ns()}-{len(keys)}.npz"
        np.savez(self.folder / name, keys=np.array(keys), vectors=rows)


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def load_embedder(backend: str, cache: Path, onnx: Path | None = None) -> CachedEmbedder:
    """The bundled model on ``backend`` (its ONNX build from EMBEDSEARCH_MODELS_DIR), cached;
    or the ONNX file ``onnx`` (a candidate build), cached under its file name."""
    from app.embeddings.backends import load_encoder
    from app.embeddings.models import bundled_minilm
    from app.embeddings.onnx import OnnxEncoder
    from app.embeddings.onnx_build import ModelCache

    settings = Settings(_env_file=None)
    spec = bundled_minilm()
    if onnx is not None:
        candidate = OnnxEncoder(spec, onnx, backend=backend)
        return CachedEmbedder(candidate, spec.id, cache, f"{backend}-{onnx.stem}")
    models = settings.models_dir or Path("data/models")
    encoder = load_encoder(spec, backend, cache=ModelCache(models))
    if encoder.backend != backend:
        raise RuntimeError(f"{backend} fell back to {encoder.backend}: {encoder.fallback}")
    # An ONNX build's vectors are cached under its file's digest: a rebuild (another
    # quantization, another library version) must not reuse its predecessor's vectors.
    path = getattr(encoder, "path", None)
    name = f"{backend}-{_file_digest(path)}" if path else backend
    return CachedEmbedder(encoder, spec.id, cache, name)


def _file_digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()[:12]


# -- the app on one set ---------------------------------------------------------------------


@dataclass
class Candidates:
    """One query's document rankings from each list, as (document external id, score)."""

    semantic: list[tuple[str, float]]  # with the chunks keyword search alone found, as fused
    keyword: list[tuple[str, float]]
    weight: float  # the keyword weight the app gives this query
    coverage: float  # how much of the query the best keyword hit holds


@dataclass
class Loaded:
    """A set ingested into an in-memory store, with the searcher over it."""

    evalset: EvalSet
    searcher: Searcher
    external: dict[int, str]  # document id -> external id
    chunks: int
    candidates: dict[str, Candidates] = field(default_factory=dict)


def ingest(evalset: EvalSet, embedder: CachedEmbedder) -> Loaded:
    """The set's documents stored and indexed by the app's ingestion."""
    settings = Settings(_env_file=None)
    store = Store(None)
    indexes = Indexes(store, FaissFiles(None))
    ingestor = Ingestor(
        store,
        indexes,
        embedder,
        encoder=lambda: embedder.encoder,
        chunk_tokens=settings.chunk_tokens,
        chunk_overlap=settings.chunk_overlap,
    )
    where = f"{evalset.name}.jsonl"
    source = Source(where, [json_record(r, where) for r in evalset.documents])
    job = store.create_job(evalset.name)
    done = ingestor.run(job.id, evalset.name, [source])
    if done is None or done.state != "done":
        raise RuntimeError(f"Ingesting {evalset.name} failed: {done}")
    collection = store.get_collection(evalset.name)
    documents, _ = store.list_documents(collection.id, limit=10**6)
    external = {d.id: d.external_id or "" for d in documents}
    searcher = Searcher(store, indexes, embedder, QueryLimits.of(settings))
    return Loaded(evalset, searcher, external, collection.chunks)


def candidates(loaded: Loaded) -> None:
    """Each judged query's semantic and keyword document rankings, as a hybrid search gets them."""
    searcher, name = loaded.searcher, loaded.evalset.name
    collection = searcher.store.get_collection(name)
    judged = {q for qrels in loaded.evalset.qrels.values() for q in qrels}
    searcher.embedder.embed([loaded.evalset.queries[q] for q in sorted(judged)])  # one batch
    for query_id in sorted(judged):
        text = loaded.evalset.queries[query_id]
        query = SearchQuery(text)
        semantic, keyword, vector = searcher._candidates(collection, query)
        weight = searcher._keyword_weight(collection, query, semantic, keyword) or 0.0
        assert vector is not None  # a hybrid query is embedded
        semantic = searcher._with_cosines(collection, vector, semantic, keyword)
        owners = searcher.store.chunk_documents({i for i, _ in semantic + keyword})
        top = keyword[0][0] if keyword else None
        loaded.candidates[query_id] = Candidates(
            _documents(semantic, owners, loaded.external),
            _documents(keyword, owners, loaded.external),
            weight,
            0.0 if top is None else searcher.store.keyword_coverage(collection.id, text, top),
        )


def _documents(
    ranking: list[tuple[int, float]], owners: dict[int, int], external: dict[int, str]
) -> list[tuple[str, float]]:
    return [(external[d], s) for d, s in search_module._best_per(ranking, owners)]


def app_ndcg(loaded: Loaded, split: str, mode: str) -> float:
    """Mean nDCG@10 of the app's own search in ``mode`` over the split's queries."""
    scores = []
    for query_id, relevant in loaded.evalset.qrels[split].items():
        query = SearchQuery(loaded.evalset.queries[query_id], mode, k=10)
        page = loaded.searcher.search(loaded.evalset.name, query)
        ranked = [hit.document.external_id or "" for hit in page.hits]
        scores.append(ndcg(ranked, relevant))
    return statistics.fmean(scores)


# -- fusion variants ------------------------------------------------------------------------

Fusion = Callable[[Candidates], list[str]]


def _ordered(scores: dict[str, float]) -> list[str]:
    return sorted(scores, key=lambda key: (-scores[key], key))


def _signals(ranking: list[tuple[str, float]]) -> dict[str, Signal]:
    return {doc: Signal(rank, score) for rank, (doc, score) in enumerate(ranking, 1)}


def app_fusion(c: Candidates) -> list[str]:
    """The app's own fusion (``app.search.fusion.fuse``) at the query's own keyword weight."""
    return _ordered(fusion_module.fuse(_signals(c.semantic), _signals(c.keyword), c.weight))


def coverage_alone(c: Candidates, weight: float = 0.4) -> list[str]:
    """The fusion before the confidence reading: the coverage gate up to ``weight`` alone."""
    gated = weight * fusion_module.keyword_weight(c.coverage) / fusion_module.KEYWORD_WEIGHT
    return _ordered(fusion_module.fuse(_signals(c.semantic), _signals(c.keyword), gated))


def z_scores(c: Candidates, weight: float = 0.7) -> list[str]:
    """Both lists as z-scores (Qdrant's DBSF up to scale), keyword at ``weight`` x the
    coverage gate; an id missing from a list takes that list's lowest."""
    gate = fusion_module.keyword_weight(c.coverage) / fusion_module.KEYWORD_WEIGHT
    scores: dict[str, float] = defaultdict(float)
    for ranking, share in ((c.semantic, 1.0), (c.keyword, weight * gate)):
        if not ranking:
            continue
        values = np.array([score for _, score in ranking])
        spread = float(values.std()) or 1.0
        z = {doc: (score - values.mean()) / spread for doc, score in ranking}
        for doc in {d for d, _ in c.semantic} | {d for d, _ in c.keyword}:
            scores[doc] += share * z.get(doc, min(z.values()))
    return _ordered(scores)


def rrf(c: Candidates) -> list[str]:
    """Reciprocal rank fusion, k = 60."""
    scores: dict[str, float] = defaultdict(float)
    for ranking in (c.semantic, c.keyword):
        for rank, (doc, _) in enumerate(ranking, 1):
            scores[doc] += 1 / (60 + rank)
    return _ordered(scores)


def top_normalised(c: Candidates, share: float = 0.65) -> list[str]:
    """The app before #17: 0.65 x cosine / best cosine + 0.35 x BM25 / best BM25."""
    scores: dict[str, float] = defaultdict(float)
    for ranking, weight in ((c.semantic, share), (c.keyword, 1 - share)):
        best = ranking[0][1] if ranking and ranking[0][1] > 0 else 1.0
        for doc, score in ranking:
            scores[doc] += weight * score / best
    return _ordered(scores)


VARIANTS: dict[str, Fusion] = {
    "app (coverage and confidence)": app_fusion,
    "coverage gate alone, 0.4 (before)": coverage_alone,
    "z-scores 0.7": z_scores,
    "top-normalised 0.65/0.35": top_normalised,
    "rrf k=60": rrf,
}


def variant_ndcg(loaded: Loaded, split: str, fusion: Fusion) -> float:
    """Mean nDCG@10 of a fusion variant over the split's queries."""
    scores = []
    for query_id, relevant in loaded.evalset.qrels[split].items():
        scores.append(ndcg(fusion(loaded.candidates[query_id]), relevant))
    return statistics.fmean(scores)


# -- running --------------------------------------------------------------------------------


def cache_dir(given: Path | None = None) -> Path:
    """Where vectors are cached: ``given``, else $EMBEDSEARCH_FUSION_CACHE, else data/."""
    return given or Path(os.environ.get(CACHE_ENV) or "data/bench-cache/fusion")


def run(
    quick: bool = False,
    cache: Path | None = None,
    backend: str = "onnx-int8",
    sets: tuple[str, ...] = SETS,
    dump: bool = False,
    onnx: Path | None = None,
    baseline: str | None = "onnx",
) -> dict:
    """Per set and split: the app's nDCG@10 in each mode, and each variant's; and semantic
    nDCG@10 with the ``baseline`` backend's vectors (fp32 by default), in the same run."""
    embedder = load_embedder(backend, cache_dir(cache), onnx)
    reference = load_embedder(baseline, cache_dir(cache)) if baseline else None
    out: dict = {"backend": embedder.name, "baseline": reference and reference.name, "sets": {}}
    for name in ("banking77",) if quick else sets:
        start = time.perf_counter()
        loaded = ingest(BUILDERS[name](), embedder)
        candidates(loaded)
        if dump:
            with (cache_dir(cache) / f"{name}-{embedder.name}.pkl").open("wb") as f:
                pickle.dump((loaded.evalset, loaded.candidates), f)
        result: dict = {"documents": len(loaded.external), "chunks": loaded.chunks}
        for split in loaded.evalset.qrels:
            row = {mode: app_ndcg(loaded, split, mode) for mode in MODES}
            row |= {f"variant {v}": variant_ndcg(loaded, split, f) for v, f in VARIANTS.items()}
            result[split] = row
        if reference is not None:
            other = ingest(loaded.evalset, reference)
            for split in loaded.evalset.qrels:
                result[split]["baseline semantic"] = app_ndcg(other, split, "semantic")
        result["seconds"] = time.perf_counter() - start
        out["sets"][name] = result
    return out


def rows(result: dict) -> list[Row]:
    """Test nDCG@10 per set and mode; hybrid against the better single mode."""
    out: list[Row] = []
    for name, r in result["sets"].items():
        test = r["test"]
        for mode in MODES:
            out.append(Row(f"{name} test nDCG@10, {mode}", test[mode], digits=4))
        lead = test["hybrid"] - max(test["semantic"], test["keyword"])
        out.append(at_least(f"{name} test hybrid - best single mode", lead, 0.0, digits=4))
        if name == "scifact":
            target = SCIFACT_TARGET
            out.append(at_least("scifact test nDCG@10, hybrid", test["hybrid"], target, digits=4))
        for split in ("train", "test"):
            if "baseline semantic" in r[split]:
                gap = r[split]["semantic"] - r[split]["baseline semantic"]
                label = (
                    f"{name} {split} semantic nDCG@10, {result['backend']} - {result['baseline']}"
                )
                out.append(within(label, gap, BASELINE_TOLERANCE))
    return out


def table(result: dict) -> str:
    """Every set, split, mode and variant."""
    lines = [
        f"nDCG@10 through the app's search ({result['backend']})",
        "",
        "| set | split | " + " | ".join(next(iter(result["sets"].values()))["test"]) + " |",
    ]
    lines.append("|---|---|" + "---:|" * (lines[-1].count("|") - 3))
    for name, r in result["sets"].items():
        for split in ("train", "test"):
            cells = " | ".join(f"{v:.4f}" for v in r[split].values())
            lines.append(f"| {name} | {split} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run from the command line and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.fusion", description=__doc__)
    parser.add_argument("--cache", type=Path, help=f"vector cache folder (or ${CACHE_ENV})")
    parser.add_argument("--backend", default="onnx-int8", choices=("torch", "onnx", "onnx-int8"))
    parser.add_argument(
        "--sets", default=",".join(SETS), help="comma-separated: " + ", ".join(SETS)
    )
    parser.add_argument("--dump", action="store_true", help="pickle candidates to the cache")
    parser.add_argument("--onnx", type=Path, help="an ONNX build to embed with instead")
    parser.add_argument(
        "--baseline", default="onnx", help="backend to compare semantic nDCG with ('' for none)"
    )
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    args = parser.parse_args(argv)
    sets = tuple(args.sets.split(","))
    result = run(
        cache=args.cache,
        backend=args.backend,
        sets=sets,
        dump=args.dump,
        onnx=args.onnx,
        baseline=args.baseline or None,
    )
    print(table(result))
    print()
    print(markdown([("fusion", row) for row in rows(result)]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(main())
    run_alone("fusion")
