"""Vector index at scale: exact (flat) against IVF, on seeded clustered synthetic vectors.

384-d L2-normalised vectors from a gaussian mixture (so approximate search meets realistic
structure), at 100k and 1M: build time, index size, single-query p50/p99 latency and recall@10
against exact search, for the exact index and the IVF index at several nprobe. Both go through
``app.index.faiss.FaissIndex`` (IVF forced with ``exact_max=0``). ``--quick``: 50k only.
"""

from __future__ import annotations

import time

import faiss
import numpy as np

from app.index.faiss import FaissIndex, nlist_for
from app.settings import DEFAULTS
from bench.runner import Row, run_alone

DIMENSIONS = 384
CLUSTERS = 2000
NOISE = 0.045  # per-dimension std: the noise's norm is ~0.9 of a centre's
NPROBES = (8, 16, 32, 64)
NPROBE = DEFAULTS.index_nprobe  # what a server uses


def clustered(n: int, seed: int, centres: np.ndarray) -> np.ndarray:
    """n unit vectors drawn around random centres of the mixture."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIMENSIONS), np.float32)
    step = 100_000
    for start in range(0, n, step):
        m = min(step, n - start)
        which = rng.integers(len(centres), size=m)
        noise = rng.standard_normal((m, DIMENSIONS), dtype=np.float32) * NOISE
        out[start : start + m] = centres[which] + noise
    faiss.normalize_L2(out)
    return out


def index_bytes(index: FaissIndex) -> int:
    """What the index holds in memory: codes, ids and (IVF) centroids."""
    raw = index._index
    if index.kind == "flat":
        return len(index) * (DIMENSIONS * 4 + 8)
    return len(index) * (raw.code_size + 8) + raw.nlist * DIMENSIONS * 4


def latencies(index: FaissIndex, queries: np.ndarray) -> tuple[float, float]:
    """p50 and p99 in ms of one query at a time."""
    times = []
    for q in queries:
        start = time.perf_counter()
        index.search(q[None, :], 10)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of the true top 10 found."""
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def run_size(n: int, nprobes: list[int], latency_queries: int) -> list[dict]:
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((CLUSTERS, DIMENSIONS), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = clustered(n, 1, centres)
    queries = clustered(1000, 2, centres)
    ids = np.random.default_rng(3).permutation(10 * n)[:n].astype(np.int64)
    rows = []

    start = time.perf_counter()
    exact = FaissIndex(DIMENSIONS, exact_max=n + 1)
    exact.add(ids, vectors)
    build = time.perf_counter() - start
    truth = exact.search(queries, 10)[1]
    p50, p99 = latencies(exact, queries[:latency_queries])
    rows.append(
        {
            "n": n,
            "index": "flat (exact)",
            "build_s": build,
            "mb": index_bytes(exact) / 2**20,
            "p50_ms": p50,
            "p99_ms": p99,
            "recall@10": 1.0,
        }
    )
    del exact

    start = time.perf_counter()
    ivf = FaissIndex(DIMENSIONS, exact_max=0)
    ivf.add(ids, vectors)
    build = time.perf_counter() - start
    for nprobe in nprobes:
        ivf.nprobe = nprobe
        found = ivf.search(queries, 10)[1]
        p50, p99 = latencies(ivf, queries[:latency_queries])
        rows.append(
            {
                "n": n,
                "index": f"ivf nlist={nlist_for(n)} nprobe={nprobe}",
                "build_s": build,
                "mb": index_bytes(ivf) / 2**20,
                "p50_ms": p50,
                "p99_ms": p99,
                "recall@10": recall(found, truth),
            }
        )
    flat_p50 = rows[0]["p50_ms"]
    for row in rows:
        row["speedup_p50"] = flat_p50 / row["p50_ms"]
    return rows


def run(quick: bool = False) -> dict:
    """Every index at 100k and 1M vectors (50k only when quick)."""
    if quick:
        figures = run_size(50_000, list(NPROBES), 100)
    else:
        figures = run_size(100_000, list(NPROBES), 300) + run_size(1_000_000, list(NPROBES), 150)
    return {"threads": faiss.omp_get_max_threads(), "rows": figures}


def table(result: dict) -> str:
    """Every size and index as a Markdown table."""
    lines = [
        f"faiss {faiss.__version__}, {result['threads']} threads",
        "",
        "| n | index | build s | MB | p50 ms | p99 ms | x flat | recall@10 |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['n']} | {r['index']} | {r['build_s']:.1f} | {r['mb']:.0f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['speedup_p50']:.1f} | {r['recall@10']:.3f} |"
        )
    return "\n".join(lines)


def rows(result: dict) -> list[Row]:
    """Per size: exact search p50, and IVF at the server's nprobe: p50 and recall@10."""
    out = []
    for r in result["rows"]:
        if r["index"] == "flat (exact)":
            out.append(Row(f"{r['n']:,} vectors, exact p50", r["p50_ms"], "ms"))
        elif r["index"].endswith("nprobe=32"):
            out.append(Row(f"{r['n']:,} vectors, IVF nprobe=32 p50", r["p50_ms"], "ms"))
            out.append(
                Row(f"{r['n']:,} vectors, IVF nprobe=32 recall@10", r["recall@10"], digits=3)
            )
    return out


if __name__ == "__main__":
    run_alone("index_scale")
