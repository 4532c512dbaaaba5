"""SciFact (BEIR) through the HTTP API with the real model, per backend: ingest, quality, latency.

For torch and onnx-int8 in turn, a real server ingests the corpus (title + " " + text per
document, external id = ``_id``) as one JSON Lines upload, timed against the raw engine encoding
the same chunks in-process (a random sample of them in a full run). Then every query with qrels
goes through POST /api/search in each mode: document-level nDCG@10 (as pytrec_eval/BEIR: gain =
qrel score, log2 discount, ideal from the qrels) and recall@100, on the test split (and train
for torch, in a full run), and k=10 search latency per mode. ``--quick``: onnx-int8 (the default)
only, on the documents judged for the first test queries plus a few others.

With a workdir (``python -m bench --only scifact --workdir DIR``) the servers' data is kept there
(torch in DIR, others in DIR/<backend>) and a later run skips the ingestion.
"""

from __future__ import annotations

import json
import math
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench import ingest
from bench.runner import Row, at_least, run_alone, within
from tests.support.datasets import dataset
from tests.support.server import running_server

COLLECTION = "scifact"
MODES = ("semantic", "keyword", "hybrid")
BACKENDS = ("torch", "onnx-int8")
NDCG_TOLERANCE = 0.005  # onnx-int8's hybrid test nDCG@10 against torch's
RAW_SAMPLE = 1000  # chunks the raw engine encodes in a full run (all of them take minutes)
QUICK_QUERIES, QUICK_DOCS = 20, 30


def read_jsonl(path: Path) -> list[dict]:
    """Every record of a JSON-lines file."""
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query id -> {document id: relevance} from a BEIR qrels TSV (with a header)."""
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with path.open() as f:
        next(f)
        for line in f:
            query_id, doc_id, score = line.split("\t")
            qrels[query_id][doc_id] = int(score)
    return dict(qrels)


def ndcg(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    """nDCG@k with linear gains, as pytrec_eval computes it."""
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(gain / math.log2(i + 2) for i, gain in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall(ranked: list[str], relevant: dict[str, int], k: int = 100) -> float:
    """The share of relevant documents in the top k."""
    wanted = {doc for doc, gain in relevant.items() if gain > 0}
    return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0


def search(client: httpx.Client, text: str, mode: str, k: int) -> tuple[list[str], float]:
    """External ids of the top k documents, and the round trip in seconds."""
    start = time.perf_counter()
    response = client.post(
        "/api/search", json={"query": text, "mode": mode, "k": k, "collection": COLLECTION}
    )
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return [hit["document"]["external_id"] for hit in response.json()["hits"]], elapsed


def evaluate(client: httpx.Client, queries: dict[str, str], qrels: dict, mode: str) -> dict:
    """Mean nDCG@10 and recall@100 of one mode over the queries with qrels."""
    ndcgs, recalls = [], []
    for query_id, relevant in qrels.items():
        ranked, _ = search(client, queries[query_id], mode, 100)
        ndcgs.append(ndcg(ranked, relevant))
        recalls.append(recall(ranked, relevant))
    return {"ndcg@10": statistics.fmean(ndcgs), "recall@100": statistics.fmean(recalls)}


def latency(client: httpx.Client, texts: list[str], mode: str = "hybrid") -> dict[str, float]:
    """p50 and p99 round-trip milliseconds of k=10 searches (after a warm-up)."""
    for text in texts[:5]:  # a short warm-up: evaluate() has just run this mode
        search(client, text, mode, 10)
    times = sorted(search(client, text, mode, 10)[1] * 1000 for text in texts)
    return {"p50_ms": times[len(times) // 2], "p99_ms": times[int(len(times) * 0.99)]}


@contextmanager
def server_root(workdir: Path | None, backend: str) -> Iterator[Path]:
    """The backend's directory under ``workdir`` (kept), or a temporary one (removed)."""
    if workdir:
        root = workdir if backend == "torch" else workdir / backend
        root.mkdir(parents=True, exist_ok=True)
        yield root
    else:
        with tempfile.TemporaryDirectory(prefix=f"bench-scifact-{backend}-") as tmp:
            yield Path(tmp)


def ingested(client: httpx.Client, documents: int) -> bool:
    """Whether the collection already holds the corpus (a few duplicate texts are skipped)."""
    listed = client.get("/api/collections").json()["data"]
    return any(c["name"] == COLLECTION and c["documents"] >= documents - 10 for c in listed)


def subset(corpus: list[dict], qrels: dict) -> tuple[list[dict], dict]:
    """The first test queries, and a corpus of the documents judged for them plus a few others."""
    chosen = dict(list(qrels.items())[:QUICK_QUERIES])
    judged = {doc for relevant in chosen.values() for doc in relevant}
    docs = [d for d in corpus if d["_id"] in judged]
    docs += [d for d in corpus if d["_id"] not in judged][: max(0, QUICK_DOCS - len(docs))]
    return docs, chosen


def run_backend(
    backend: str,
    corpus: list[dict],
    queries: dict,
    splits: dict,
    workdir: Path | None,
    sample: int | None,
) -> dict:
    """Ingest (unless kept), evaluate and time searches on one backend's server."""
    env = {"EMBEDSEARCH_BACKEND": backend}
    result: dict = {}
    # An ONNX build on a cold cache takes minutes before the server is ready.
    with (
        server_root(workdir, backend) as root,
        running_server(root, env, timeout=900) as (url, proc, _),
        httpx.Client(base_url=url, timeout=120) as client,
    ):
        health = client.get("/health").json()
        result["backend"], result["fallback"] = health.get("backend"), health.get("fallback")
        if not ingested(client, len(corpus)):
            result["ingest"] = ingest.end_to_end(url, proc.pid, corpus, root / "data")
        for split, qrels in splits.items():
            for mode in MODES:
                result[f"{split}/{mode}"] = evaluate(client, queries, qrels, mode)
        texts = [queries[q] for q in splits["test"]]
        result["latency"] = {mode: latency(client, texts, mode) for mode in MODES}
    if "ingest" in result:  # the raw engine runs after the server stopped: one at a time
        result["raw"] = ingest.raw_engine(corpus, backend, sample)
        result["ingest_ratio"] = result["ingest"]["chunks_per_s"] / result["raw"]["chunks_per_s"]
    return result


def run(quick: bool = False, workdir: Path | None = None) -> dict:
    """Every backend's figures, and int8's hybrid test nDCG@10 less torch's."""
    corpus = ingest.records()
    data = dataset("scifact")
    queries = {q["_id"]: q["text"] for q in read_jsonl(data / "queries.jsonl")}
    splits = {split: read_qrels(data / f"qrels/{split}.tsv") for split in ("test", "train")}
    if quick:
        corpus, test = subset(corpus, splits["test"])
        splits = {"test": test}
    out: dict = {
        "documents": len(corpus),
        "queries": {split: len(qrels) for split, qrels in splits.items()},
        "backends": {},
    }
    for backend in BACKENDS[-1:] if quick else BACKENDS:
        sample = None if quick else RAW_SAMPLE
        # Train is what tuning looks at: torch's is enough, and it saves minutes per backend.
        evaluated = splits if backend == "torch" else {"test": splits["test"]}
        out["backends"][backend] = run_backend(backend, corpus, queries, evaluated, workdir, sample)
    if len(out["backends"]) == 2:
        torch, int8 = (out["backends"][b]["test/hybrid"]["ndcg@10"] for b in BACKENDS)
        out["hybrid_ndcg_diff"] = int8 - torch
    return out


def rows(result: dict) -> list[Row]:
    """Ingest ratio, test nDCG@10 and search latency per mode, int8 against torch."""
    n = result["documents"]
    scope = "" if n > 5000 else f" [{n}-doc subset]"
    out = []
    for backend, r in result["backends"].items():
        name = backend if r["backend"] == backend else f"{backend} (FELL BACK TO {r['backend']})"
        if "ingest" in r:
            e2e, raw = r["ingest"]["chunks_per_s"], r["raw"]["chunks_per_s"]
            out += [
                Row(f"{name} ingest {n} docs end to end", e2e, "chunks/s", digits=1),
                Row(f"{name} raw engine, same chunks", raw, "chunks/s", digits=1),
                at_least(f"{name} ingest end to end / raw", r["ingest_ratio"], ingest.TARGET, "x"),
                Row(
                    f"{name} ingest CPU per chunk, raw / end to end (steadier on a loaded machine)",
                    r["raw"]["cpu_ms_per_chunk"] / r["ingest"]["cpu_ms_per_chunk"],
                    "x",
                ),
            ]
        for mode in MODES:
            out.append(
                Row(f"{name} test nDCG@10, {mode}{scope}", r[f"test/{mode}"]["ndcg@10"], digits=4)
            )
        for mode in MODES:
            p50 = r["latency"][mode]["p50_ms"]
            out.append(Row(f"{name} search p50, {mode}, k=10{scope}", p50, "ms", digits=1))
    diff = within(
        "onnx-int8 - torch test nDCG@10, hybrid", result.get("hybrid_ndcg_diff"), NDCG_TOLERANCE
    )
    int8 = result["backends"].get("onnx-int8")
    if int8 and int8["backend"] != "onnx-int8":  # torch against torch would pass: it must not
        diff.ok = False
    return [*out, diff]


def table(result: dict) -> str:
    """Every split, mode and backend, with latency and ingestion details."""
    lines = [
        f"SciFact, document-level, {result['documents']} documents, queries with qrels: "
        f"{result['queries']}",
        "",
        "| backend | split | mode | nDCG@10 | recall@100 | p50 ms | p99 ms |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for backend, r in result["backends"].items():
        for split in result["queries"]:
            if f"{split}/hybrid" not in r:
                continue
            for mode in MODES:
                q, lat = r[f"{split}/{mode}"], r["latency"][mode]
                quality = f"{q['ndcg@10']:.4f} | {q['recall@100']:.4f}"
                times = f"{lat['p50_ms']:.1f} | {lat['p99_ms']:.1f}" if split == "test" else " | "
                lines.append(f"| {backend} | {split} | {mode} | {quality} | {times} |")
    for backend, r in result["backends"].items():
        if "ingest" in r:
            e = r["ingest"]
            lines.append(
                f"\n{backend}: ingested {e['documents']} documents, {e['chunks']} chunks in "
                f"{e['seconds']:.0f} s ({e['chunks_per_s']:.1f} chunks/s, raw engine "
                f"{r['raw']['chunks_per_s']:.1f}); {e['disk_bytes_per_1000_chunks'] / 1e6:.2f} MB "
                f"per 1,000 chunks; server peak RSS {e['peak_rss_mb']:.0f} MB"
            )
        if r["fallback"]:
            lines.append(f"!! {backend} fell back to {r['backend']}: {r['fallback']}")
    return "\n".join(lines)


if __name__ == "__main__":
    run_alone("scifact")
