"""Vector index at scale: exact (flat) against IVF, on seeded clustered synthetic vectors.

384-d L2-normalised vectors from a gaussian mixture (so approximate search meets realistic
structure), at 100k and 1M: build time, index size, single-query p50/p99 latency and recall@10
against exact search, for the exact index and the IVF index at several nprobe. Both go through
``app.store.index.FaissIndex`` (IVF forced with ``exact_max=0``).

    python -m bench.index_scale [--quick] [--sizes 100000,1000000] [--threads N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import time

import faiss
import numpy as np

from app.store.index import FaissIndex, nlist_for

DIMENSIONS = 384
CLUSTERS = 2000
NOISE = 0.045  # per-dimension std: the noise's norm is ~0.9 of a centre's


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k only")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--nprobes", default="8,16,32,64")
    parser.add_argument("--threads", type=int, default=0, help="FAISS OpenMP threads (0: all)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    sizes = [100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    nprobes = [int(s) for s in args.nprobes.split(",")]
    rows = []
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads")
    print(
        f"{'n':>9} {'index':<28} {'build s':>8} {'MB':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'x flat':>7} {'recall@10':>9}"
    )
    for n in sizes:
        for row in run_size(n, nprobes, 300 if n <= 200_000 else 150):
            rows.append(row)
            print(
                f"{row['n']:>9} {row['index']:<28} {row['build_s']:>8.1f} {row['mb']:>8.0f} "
                f"{row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['speedup_p50']:>7.1f} "
                f"{row['recall@10']:>9.3f}",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
