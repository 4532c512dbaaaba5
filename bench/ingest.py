"""Ingesting SciFact, timed: the raw engine against end to end through the API, in one run.

Raw: the chunk texts the server would embed (same chunker, same tokenizer), encoded in-process,
length-sorted in batches of 64 as a tuned loop would. End to end: the corpus uploaded as one JSON
Lines file to a real server with ``?wait=true``; also the on-disk size per 1,000 chunks and the
server's peak memory. Both say their CPU per chunk: on a machine others load, the two runs get
different shares of the cores, and the ratio of CPU per chunk is the steadier comparison (with
the model keeping both cores busy, throughput follows it).

``run`` takes turns, raw then end to end (a new server each time), and reports the median of the
rounds' ratios: the machine's speed drifts between minutes. ``scifact`` uses the two parts too.

    python -m bench --only ingest [--quick]   (or python -m bench.ingest)
"""

from __future__ import annotations

import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.runner import Row, at_least, run_alone
from tests.support.datasets import dataset
from tests.support.server import running_server

TARGET = 0.95  # end-to-end chunks/s over the raw engine's on the same chunks
BACKEND = "onnx-int8"  # the served default
ROUNDS, QUICK_ROUNDS = 2, 1
WARM_DOCS = 8  # uploaded to a fresh server before the timed upload
DOCS, QUICK_DOCS = 2000, 300  # 2,000 documents: ~5,000 chunks, about a minute each way


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def records(limit: int | None = None) -> list[dict]:
    """SciFact documents as upload records: title + " " + text, with the BEIR id."""
    with (dataset("scifact") / "corpus.jsonl").open() as f:
        rows = [json.loads(line) for line in f][:limit]
    return [
        {"_id": r["_id"], "title": r["title"], "text": f"{r['title']} {r['text']}"} for r in rows
    ]


def raw_engine(docs: list[dict], backend: str, sample: int | None = None) -> dict:
    """Chunk as the server does, then encode the chunks (or a random ``sample`` of them)."""
    from app.embeddings.backends import load_encoder
    from app.embeddings.encoder import encode_batches
    from app.embeddings.models import bundled_minilm
    from app.embeddings.onnx_build import ModelCache
    from app.ingest.chunking import chunk_text
    from app.settings import Settings
    from tests.support.server import MODELS

    settings = Settings(_env_file=None)
    encoder = load_encoder(bundled_minilm(), backend, cache=ModelCache(MODELS))
    texts = [
        chunk.embed_text
        for doc in docs
        for chunk in chunk_text(
            doc["text"],
            encoder.tokenizer,
            max_tokens=settings.chunk_tokens,
            overlap=settings.chunk_overlap,
            title=doc["title"],  # as the server reads a record's title with its chunks
        )
    ]
    chunks = len(texts)
    if sample and sample < chunks:  # chunks/s holds on a sample; the whole corpus takes minutes
        texts = random.Random(0).sample(texts, sample)
    encoder.encode(encoder.tokenize(texts[:8]))  # warm up
    start, cpu = time.perf_counter(), time.process_time()
    ids = [seq[: encoder.max_tokens] for seq in encoder.tokenize(texts)]
    ids.sort(key=len)  # as a tuned raw loop would: batches of like lengths pad least
    encode_batches(encoder, [ids[i : i + 64] for i in range(0, len(ids), 64)])
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "backend": encoder.backend,
        "chunks": chunks,
        "encoded": len(texts),
        "seconds": seconds,
        "chunks_per_s": len(texts) / seconds,
        "cpu_ms_per_chunk": 1000 * cpu / len(texts),
    }


def upload(url: str, docs: list[dict], collection: str, wait: bool = True) -> httpx.Response:
    """Upload the documents as one JSON Lines file; with ``wait``, answer once they are stored."""
    body = "\n".join(json.dumps(d) for d in docs).encode()
    response = httpx.post(
        f"{url}/api/documents",
        params={"wait": str(wait).lower()},
        files={"files": (f"{collection}.jsonl", body)},
        data={"collection": collection},
        timeout=7200,
    )
    return response.raise_for_status()


def end_to_end(url: str, pid: int, docs: list[dict], data: Path) -> dict:
    """Upload the documents to the server at ``url`` and wait; time it, measure disk and memory."""
    start, cpu = time.perf_counter(), cpu_seconds(pid)
    response = upload(url, docs, "scifact")
    seconds, cpu = time.perf_counter() - start, cpu_seconds(pid) - cpu
    job = response.json()
    status = Path(f"/proc/{pid}/status").read_text()
    peak_kb = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
    collection = next(
        c for c in httpx.get(f"{url}/api/collections").json()["data"] if c["name"] == "scifact"
    )
    disk = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    chunks = collection["chunks"]
    return {
        "state": job["state"],
        "documents": collection["documents"],
        "chunks": chunks,
        "seconds": seconds,
        "documents_per_s": collection["documents"] / seconds,
        "chunks_per_s": chunks / seconds,
        "cpu_ms_per_chunk": 1000 * cpu / chunks,
        "disk_bytes": disk,
        "disk_bytes_per_1000_chunks": disk / chunks * 1000,
        "peak_rss_mb": peak_kb / 1024,
    }


def run(quick: bool = False) -> dict:
    """Rounds of the raw engine, then the same documents end to end; the ratios' median."""
    corpus = records()
    n = QUICK_DOCS if quick else DOCS
    docs, warm = corpus[:n], corpus[n : n + WARM_DOCS]
    rounds = []
    for _ in range(QUICK_ROUNDS if quick else ROUNDS):
        load = os.getloadavg()[0]
        raw = raw_engine(docs, BACKEND)
        with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp)) as (url, proc, _):
            upload(url, warm, "warm-up")  # as the raw engine warms up before it is timed
            e2e = end_to_end(url, proc.pid, docs, Path(tmp) / "data")
        ratio = e2e["chunks_per_s"] / raw["chunks_per_s"]
        rounds.append({"raw": raw, "e2e": e2e, "ratio": ratio, "load": (load, os.getloadavg()[0])})
    return {
        "documents": len(docs),
        "chunks": rounds[0]["raw"]["chunks"],
        "rounds": rounds,
        "ratio": statistics.median(r["ratio"] for r in rounds),
    }


def rows(result: dict) -> list[Row]:
    """The ratio against its target, then each round's ratio, rates and CPU per chunk."""
    n, chunks = result["documents"], result["chunks"]
    out = [
        at_least(
            f"SciFact ingest ({n} docs, {chunks} chunks) end to end / raw",
            result["ratio"],
            TARGET,
            "x",
        )
    ]
    for i, r in enumerate(result["rounds"], 1):
        raw, e2e, (before, after) = r["raw"], r["e2e"], r["load"]
        out += [
            Row(
                f"round {i} (load average {before:.1f} -> {after:.1f}): end to end / raw",
                r["ratio"],
                "x",
                digits=3,
            ),
            Row(
                f"round {i}: raw engine / end to end",
                raw["chunks_per_s"],
                f"/ {e2e['chunks_per_s']:.1f} chunks/s",
                digits=1,
            ),
            Row(
                f"round {i}: CPU per chunk, raw engine / server",
                raw["cpu_ms_per_chunk"],
                f"/ {e2e['cpu_ms_per_chunk']:.2f} ms",
                digits=2,
            ),
        ]
    return out


if __name__ == "__main__":
    run_alone("ingest")
