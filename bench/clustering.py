"""Clustering benchmark: quality through the HTTP API with the real model, speed at SciFact scale.

Quality: a real server on 127.0.0.1 ingests BANKING77's 3,080 test texts (one JSON document
each), clusters them with k=77 and with an automatic k (POST /api/clusters) and reads each
document's cluster from GET /api/map; V-measure against the intent labels (target >= 0.80,
k-means reference 0.78-0.80), and the share of cluster labels holding a word of their majority
intent. AG News' 7,600 items likewise, automatic k only (target: V-measure >= 0.55 or k = 4),
labels judged against words for its four classes (``TOPIC_WORDS``).

Speed: 5,000 SciFact abstracts stored in-process with random unit 384-d vectors (two chunks per
document), clustered into 20 (target <= 5 s) and automatically, then mapped (target <= 2 s).
``--quick``: speed only (no model), at 1,000 documents.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from sklearn.metrics import v_measure_score

from bench.runner import Row, at_least, at_most, run_alone
from tests.support.datasets import dataset
from tests.support.server import running_server

V_TARGETS = {"banking77": 0.80, "ag_news": 0.55}  # AG News: or automatic k = 4
# Words a person would use for each AG News class (written from the class names, before
# looking at any label): a label that holds one of its majority class's words reads right.
TOPIC_WORDS = {
    "World": "world international iraq iraqi war president minister government election "
    "military troops killed police palestinian israel israeli nuclear iran afghanistan "
    "sudan darfur attack bomb rebels peace leader country united nations",
    "Sports": "sports sport game games team season win won victory cup league coach "
    "olympic olympics football baseball basketball soccer tennis golf nfl nba match "
    "championship player players series yankees red sox athens medal race",
    "Business": "business economy economic oil prices price stocks stock shares market "
    "company companies profit earnings sales bank dollar investors deal billion quarter "
    "fed rates jobs airline retail",
    "Sci/Tech": "technology tech science scientific software computer computers internet web "
    "microsoft google apple ibm intel space nasa mobile phone online digital linux "
    "windows research scientists security virus wireless",
}


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


def label_words(name: str, label: str) -> set[str]:
    """The words that name a true label: its topic words (AG News) or its intent's words."""
    if name == "ag_news":
        return set(TOPIC_WORDS[label].split())
    return {word.lower() for word in label.replace("?", "").split("_") if len(word) > 2}


def readable(name: str, cluster_label: str, true_label: str) -> bool:
    """Whether a cluster's label holds a word of its majority true label (by 4-letter stem)."""
    stems = {word[:4] for word in label_words(name, true_label)}
    words = cluster_label.replace("·", " ").split()
    return any(word[:4] in stems for word in words)


def quality(url: str, name: str, k: int | None = None) -> dict:
    """Ingest a labelled dataset, cluster it (k None: automatic), score and show labels."""
    rows = read_jsonl(dataset(name) / "test.jsonl")
    with httpx.Client(base_url=url, timeout=600) as http:
        start = time.perf_counter()
        ids = ingest(http, name, [row["text"] for row in rows])
        ingest_s = time.perf_counter() - start
        start = time.perf_counter()
        r = http.post("/api/clusters", json={"collection": name, "k": k or "auto"})
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
        "k": clustering["k"],
        "auto": clustering["auto"],
        "v_measure": v_measure_score(truth, predicted),
        "readable": statistics.fmean(readable(name, e["label"], e["majority"]) for e in examples),
        "ingest_s": ingest_s,
        "cluster_s": cluster_s,
        "map_s": map_s,
        "examples": examples,
    }


def speed(documents: int = 5000, k: int = 20) -> dict:
    """Seconds to cluster (k given and automatic) and map SciFact-sized text, random vectors."""
    from app.search.clusters import cluster_collection
    from app.search.projection import document_map
    from app.store.database import Store
    from app.store.records import ChunkRecord

    rows = read_jsonl(dataset("scifact") / "corpus.jsonl")[:documents]
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
        document_map(store, collection, documents)  # inline, not in the background
        timings["map_cold_s"] = time.perf_counter() - start
        start = time.perf_counter()
        document_map(store, collection, documents)
        timings["map_cached_s"] = time.perf_counter() - start
        store.close()
    return {"documents": len(rows), "chunks": 2 * len(rows), **timings}


def map_quality(name: str, documents: int) -> dict:
    """Trustworthiness (k=10) and seconds of the t-SNE map against PCA's, on real vectors."""
    from sklearn.manifold import trustworthiness

    from app.embeddings.backends import load_encoder
    from app.embeddings.models import bundled_minilm
    from app.embeddings.onnx_build import ModelCache
    from app.search.clusters import normalise
    from app.search.projection import pca_2d, tsne_2d
    from tests.support.server import MODELS

    texts = [row["text"] for row in read_jsonl(dataset(name) / "test.jsonl")][:documents]
    encoder = load_encoder(bundled_minilm(), "onnx-int8", cache=ModelCache(MODELS))
    ids = [seq[: encoder.max_tokens] for seq in encoder.tokenize(texts)]
    vectors = normalise(
        np.vstack([encoder.encode(ids[i : i + 64]) for i in range(0, len(ids), 64)])
    )
    out: dict = {"dataset": name, "documents": len(texts)}
    for method, project in (("pca", pca_2d), ("tsne", tsne_2d)):
        start, cpu = time.perf_counter(), time.process_time()
        xy = project(vectors)
        out[method] = {
            "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu,
            "trustworthiness": trustworthiness(vectors, xy, n_neighbors=10, metric="cosine"),
        }
    return out


def run(quick: bool = False) -> dict:
    """Speed at 5,000 documents and BANKING77 quality; quick: speed at 1,000 only."""
    results: dict = {"quality": [], "speed": speed(1000 if quick else 5000), "maps": []}
    if not quick:
        results["maps"] = [map_quality("ag_news", 5000), map_quality("banking77", 5000)]
        with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp)) as (url, _, _):
            results["quality"] = [
                quality(url, "banking77", 77),
                quality(url, "banking77"),
                quality(url, "ag_news"),
            ]
    return results


def rows(result: dict) -> list[Row]:
    """V-measure, and clustering and map times (held to targets at 5,000 documents)."""
    quality = result["quality"] or [
        {"dataset": "banking77", "k": 77, "auto": False, "v_measure": None, "readable": None}
    ]
    out = []
    for q in quality:
        k = f"auto k={q['k']}" if q["auto"] else f"k={q['k']}"
        target = V_TARGETS[q["dataset"]]
        out.append(at_least(f"{q['dataset']} V-measure ({k})", q["v_measure"], target, digits=4))
        out.append(Row(f"{q['dataset']} labels naming their topic ({k})", q["readable"], digits=3))
    s = result["speed"]
    n = s["documents"]
    if n == 5000:
        out.append(at_most(f"cluster {n} docs, k=20", s["cluster_k20_s"], 5, "s"))
        out.append(at_most(f"map {n} docs, cold", s["map_cold_s"], 10, "s"))
    else:
        out.append(Row(f"cluster {n} docs, k=20", s["cluster_k20_s"], "s"))
        out.append(Row(f"map {n} docs, cold", s["map_cold_s"], "s"))
    for m in result.get("maps", []):
        name = f"{m['dataset']} map of {m['documents']}"
        out.append(Row(f"{name}: PCA trustworthiness (k=10)", m["pca"]["trustworthiness"]))
        tsne = m["tsne"]
        out.append(at_least(f"{name}: t-SNE trustworthiness (k=10)", tsne["trustworthiness"], 0.9))
        out.append(at_most(f"{name}: t-SNE seconds", tsne["seconds"], 10, "s"))
        out.append(Row(f"{name}: t-SNE CPU seconds", tsne["cpu_seconds"], "s"))
    return out


def table(result: dict) -> str:
    """Every figure, and each cluster's label against its majority true label."""
    s = result["speed"]
    n = s["documents"]
    lines = ["| measure | value |", "|---|---:|"]
    for q in result["quality"]:
        lines += [
            f"| {q['dataset']} V-measure (k={q['k']}) | {q['v_measure']:.4f} |",
            f"| {q['dataset']} POST /api/clusters (s) | {q['cluster_s']:.2f} |",
            f"| {q['dataset']} GET /api/map, cold (s) | {q['map_s']:.2f} |",
        ]
    lines += [
        f"| cluster {n} docs, k=20 (s) | {s['cluster_k20_s']:.2f} |",
        f"| cluster {n} docs, auto k={s['cluster_auto_k']} (s) | {s['cluster_auto_s']:.2f} |",
        f"| map {n} docs, cold (s) | {s['map_cold_s']:.2f} |",
        f"| map {n} docs, cached (s) | {s['map_cached_s']:.3f} |",
    ]
    for q in result["quality"]:
        lines.append(
            f"\n{q['dataset']}: cluster label -> majority true label (purity), largest first"
        )
        for example in q["examples"][:12]:
            lines.append(
                f"  {example['label']:<48} -> {example['majority']} ({example['purity']:.0%})"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    run_alone("clustering")
