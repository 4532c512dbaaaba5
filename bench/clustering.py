"""Clustering benchmark: quality through the HTTP API with the real model, speed at SciFact scale.

Quality: a real server on 127.0.0.1 ingests BANKING77's 3,080 test texts (one JSON document
each), clusters them with k=77 (POST /api/clusters) and reads each document's cluster from
GET /api/map; V-measure against the intent labels (target >= 0.78, reference 0.78-0.80).
``--ag-news`` does the same for AG News' 7,600 items with k=4 (reference ~0.60).

Speed: 5,000 SciFact abstracts stored in-process with random unit 384-d vectors (two chunks per
document), clustered into 20 (target <= 5 s) and automatically, then mapped (target <= 2 s).

    python -m bench.clustering [--ag-news] [--skip-quality] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from sklearn.metrics import v_measure_score

from bench.server import running_server

DATA = Path(__file__).resolve().parent.parent.parent / "shared/data"
DATASETS = {"banking77": 77, "ag_news": 4}


def read_jsonl(path: Path) -> list[dict]:
    """Every row of a JSON-lines file."""
    with path.open() as f:
        return [json.loads(line) for line in f]


def ingest(http: httpx.Client, collection: str, texts: list[str], batch: int = 500) -> list[int]:
    """Add one document per text (waiting for each batch); the new ids in input order."""
    ids: list[int] = []
    for start in range(0, len(texts), batch):
        documents = [
            {"title": text[:80], "text": text, "external_id": str(start + i)}
            for i, text in enumerate(texts[start : start + batch])
        ]
        r = http.post(
            "/api/documents",
            params={"wait": "true"},
            json={"collection": collection, "documents": documents},
        )
        r.raise_for_status()
        ids += r.json()["documents"]
    return ids


def quality(url: str, name: str) -> dict:
    """Ingest a labelled dataset, cluster it with its number of labels, score and show labels."""
    k = DATASETS[name]
    rows = read_jsonl(DATA / name / "test.jsonl")
    with httpx.Client(base_url=url, timeout=600) as http:
        start = time.perf_counter()
        ids = ingest(http, name, [row["text"] for row in rows])
        ingest_s = time.perf_counter() - start
        start = time.perf_counter()
        r = http.post("/api/clusters", json={"collection": name, "k": k})
        r.raise_for_status()
        cluster_s = time.perf_counter() - start
        clustering = r.json()
        start = time.perf_counter()
        points = http.get("/api/map", params={"collection": name}).json()["points"]
        map_s = time.perf_counter() - start
    cluster_of = {point["id"]: point["cluster"] for point in points}
    truth = [row["label_name"] for row in rows]
    predicted = [cluster_of[i] for i in ids]
    by_cluster: dict[int, Counter] = {}
    for label, cluster in zip(truth, predicted, strict=True):
        by_cluster.setdefault(cluster, Counter())[label] += 1
    examples = [
        {
            "label": c["label"],
            "size": c["size"],
            "majority": by_cluster[c["id"]].most_common(1)[0][0],
            "purity": by_cluster[c["id"]].most_common(1)[0][1] / c["size"],
        }
        for c in clustering["clusters"]
    ]
    return {
        "dataset": name,
        "documents": len(rows),
        "k": k,
        "v_measure": v_measure_score(truth, predicted),
        "ingest_s": ingest_s,
        "cluster_s": cluster_s,
        "map_s": map_s,
        "examples": examples,
    }


def speed(documents: int = 5000, k: int = 20) -> dict:
    """Seconds to cluster (k given and automatic) and map SciFact-sized text, random vectors."""
    from app.search.clusters import cluster_collection
    from app.search.projection import document_map
    from app.store.database import ChunkRecord, Store

    rows = read_jsonl(DATA / "scifact/corpus.jsonl")[:documents]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        collection = store.ensure_collection("scifact", "bench", 384, "faiss")
        for i, row in enumerate(rows):
            text = f"{row['title']} {row['text']}"
            half = len(text) // 2
            chunks = [
                ChunkRecord(0, text[:half], 0, half, 150),
                ChunkRecord(1, text[half:], half, len(text), 150),
            ]
            vectors = rng.normal(size=(2, 384)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            fields = {
                "title": row["title"],
                "source_name": f"{i}.txt",
                "source_type": "text/plain",
                "size": len(text),
                "content_hash": str(i),
                "text": text,
            }
            store.add_document(collection.id, fields, chunks, vectors)
        collection = store.get_collection("scifact")
        timings = {}
        for label, chosen in (("cluster_k20_s", k), ("cluster_auto_s", None)):
            start = time.perf_counter()
            stored = cluster_collection(store, collection, chosen)
            timings[label] = time.perf_counter() - start
            timings[label.replace("_s", "_k")] = stored.result["k"]
        start = time.perf_counter()
        document_map(store, collection)
        timings["map_cold_s"] = time.perf_counter() - start
        start = time.perf_counter()
        document_map(store, collection)
        timings["map_cached_s"] = time.perf_counter() - start
        store.close()
    return {"documents": len(rows), "chunks": 2 * len(rows), **timings}


def row(name: str, value: float, target: str = "", digits: int = 2) -> None:
    """One line of the results table."""
    print(f"{name:<44}{value:>10.{digits}f}  {target}")


def report(results: dict) -> None:
    """Print the figures against their targets."""
    print(f"{'measure':<44}{'value':>10}  target")
    for q in results["quality"]:
        target = ">= 0.78" if q["dataset"] == "banking77" else "~0.60 (reference)"
        row(f"{q['dataset']} V-measure (k={q['k']})", q["v_measure"], target, 4)
        row(f"{q['dataset']} POST /api/clusters (s)", q["cluster_s"])
        row(f"{q['dataset']} GET /api/map, cold (s)", q["map_s"])
    s = results["speed"]
    n = s["documents"]
    row(
        f"cluster {n} docs, k=20 (s)",
        s["cluster_k20_s"],
        f"<= 5 (ratio {s['cluster_k20_s'] / 5:.2f})",
    )
    row(f"cluster {n} docs, auto k={s['cluster_auto_k']} (s)", s["cluster_auto_s"])
    row(f"map {n} docs, cold (s)", s["map_cold_s"], f"<= 2 (ratio {s['map_cold_s'] / 2:.2f})")
    row(f"map {n} docs, cached (s)", s["map_cached_s"], digits=3)
    for q in results["quality"]:
        print(f"\n{q['dataset']}: cluster label -> majority true label (purity), largest first")
        for example in q["examples"][:12]:
            print(f"  {example['label']:<48} -> {example['majority']} ({example['purity']:.0%})")


def main() -> None:
    """Run the benchmark, print the table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ag-news", action="store_true", help="also cluster AG News (k=4)")
    parser.add_argument("--skip-quality", action="store_true", help="speed only (no model)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    results: dict = {"quality": [], "speed": speed()}
    if not args.skip_quality:
        names = ["banking77", "ag_news"] if args.ag_news else ["banking77"]
        with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp)) as (url, _, _):
            results["quality"] = [quality(url, name) for name in names]
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
