"""Ingest benchmark: SciFact end to end through the API against the raw engine, in one run.

Raw: the same chunk texts the server would embed (same chunker, same tokenizer), encoded
in-process in batches of 64. End to end: the corpus uploaded as one JSON Lines file to a real
server with ``?wait=true``. Also the on-disk size per 1,000 chunks and the server's peak memory.

    python -m bench.ingest [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import httpx

from bench.server import running_server

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared/data/scifact/corpus.jsonl"


def records(limit: int | None = None) -> list[dict]:
    """SciFact documents as upload records: title + " " + text, with the BEIR id."""
    with CORPUS.open() as f:
        rows = [json.loads(line) for line in f][:limit]
    return [
        {"_id": r["_id"], "title": r["title"], "text": f"{r['title']} {r['text']}"} for r in rows
    ]


def raw_engine(docs: list[dict]) -> dict:
    """Chunk as the server does, then encode every chunk in-process; time the encoding."""
    from app.embeddings.encoder import SentenceTransformerEncoder
    from app.embeddings.models import bundled_minilm
    from app.ingest.chunking import chunk_text
    from app.settings import Settings

    settings = Settings(_env_file=None)
    encoder = SentenceTransformerEncoder(bundled_minilm())
    texts = [
        chunk.embed_text
        for doc in docs
        for chunk in chunk_text(
            doc["text"],
            encoder.tokenizer,
            max_tokens=settings.chunk_tokens,
            overlap=settings.chunk_overlap,
        )
    ]
    encoder.encode(encoder.tokenize(texts[:8]))  # warm up
    start = time.perf_counter()
    ids = [seq[: encoder.max_tokens] for seq in encoder.tokenize(texts)]
    ids.sort(key=len)  # as a tuned raw loop would: batches of like lengths pad least
    for i in range(0, len(ids), 64):
        encoder.encode(ids[i : i + 64])
    seconds = time.perf_counter() - start
    return {"chunks": len(texts), "seconds": seconds, "chunks_per_s": len(texts) / seconds}


def end_to_end(docs: list[dict], workdir: Path) -> dict:
    """Upload the corpus to a real server and wait for the job; measure disk and memory."""
    body = "\n".join(json.dumps(d) for d in docs).encode()
    with running_server(workdir) as (url, proc, _):
        start = time.perf_counter()
        response = httpx.post(
            f"{url}/api/documents",
            params={"wait": "true"},
            files={"files": ("scifact.jsonl", body)},
            data={"collection": "scifact"},
            timeout=3600,
        )
        seconds = time.perf_counter() - start
        job = response.json()
        status = Path(f"/proc/{proc.pid}/status").read_text()
        peak_kb = int(
            next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]
        )
        collection = httpx.get(f"{url}/api/collections").json()["data"][0]
    disk = sum(p.stat().st_size for p in (workdir / "data").rglob("*") if p.is_file())
    chunks = collection["chunks"]
    return {
        "state": job["state"],
        "documents": collection["documents"],
        "chunks": chunks,
        "seconds": seconds,
        "documents_per_s": collection["documents"] / seconds,
        "chunks_per_s": chunks / seconds,
        "disk_bytes": disk,
        "disk_bytes_per_1000_chunks": disk / chunks * 1000,
        "peak_rss_mb": peak_kb / 1024,
    }


def run(quick: bool = False) -> dict:
    """Raw and end to end on the same documents, and their ratio."""
    docs = records(600 if quick else None)
    raw = raw_engine(docs)
    with tempfile.TemporaryDirectory() as tmp:
        e2e = end_to_end(docs, Path(tmp))
    return {"raw": raw, "end_to_end": e2e, "ratio": e2e["chunks_per_s"] / raw["chunks_per_s"]}


def table(result: dict) -> str:
    """The results as a Markdown table."""
    raw, e2e = result["raw"], result["end_to_end"]
    return "\n".join(
        [
            "| measure | value |",
            "|---|---:|",
            f"| documents | {e2e['documents']} |",
            f"| chunks | {e2e['chunks']} (raw chunker: {raw['chunks']}) |",
            f"| raw engine chunks/s | {raw['chunks_per_s']:.1f} |",
            f"| end-to-end chunks/s | {e2e['chunks_per_s']:.1f} |",
            f"| end-to-end documents/s | {e2e['documents_per_s']:.1f} |",
            f"| end-to-end / raw | {result['ratio']:.2f} |",
            f"| on disk per 1,000 chunks | {e2e['disk_bytes_per_1000_chunks'] / 1e6:.2f} MB |",
            f"| server peak RSS | {e2e['peak_rss_mb']:.0f} MB |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="600 documents instead of 5,183")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    result = run(args.quick)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
