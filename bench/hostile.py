"""Hostile-load benchmark: ordinary requests' latency and the server's memory while hostile
requests of every kind run at the same time.

One real server holds 1,200 short documents (so keyword search takes its large-collection path).
Clients send ordinary requests (a one-text embedding, a hybrid search) for ``--seconds``: first
alone (the baseline), then again while one hostile request of each kind repeats beside them: a
PDF whose pages share a 1 MB content stream, a DOCX that inflates to ~190 MB of XML, a 1 MB
keyword query, k=1000 grouped by chunk, clusters with k=4837, metadata nested 500 deep and a
lone surrogate. Prints p50/p99 of both phases, their ratio and the server's peak RSS (its
sandboxed children included). Target: p99 < 1 s and RSS < 1.5 GB under hostile load.

Run: ``python -m bench.hostile [--clients 64] [--seconds 45]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.hostile import docx_bomb, many_pages_pdf
from tests.support.server import running_server


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB (Linux)."""
    total = 0
    for status in [Path(f"/proc/{pid}/status"), *_children(pid)]:
        try:
            line = next(x for x in status.read_text().splitlines() if x.startswith("VmRSS"))
            total += int(line.split()[1])
        except (OSError, StopIteration):
            pass
    return total / 1024


def _children(pid: int) -> list[Path]:
    try:
        ids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [Path(f"/proc/{child}/status") for child in ids]


def hostile_requests() -> list[tuple[str, str, dict]]:
    """(name, path, httpx keyword arguments) of one hostile request of each kind."""
    deep: dict = {}
    for _ in range(500):
        deep = {"a": deep}
    words = " ".join(f"w{i}" for i in range(150_000))  # ~1 MB of distinct words
    return [
        (
            "slow pdf",
            "/api/documents",
            {"files": {"files": ("s.pdf", many_pages_pdf(2000, 1_000_000))}},
        ),
        ("docx bomb", "/api/documents", {"files": {"files": ("b.docx", docx_bomb(3_000_000))}}),
        ("1 MB query", "/api/search", {"json": {"query": words, "mode": "keyword"}}),
        (
            "k=1000 chunks",
            "/api/search",
            {"json": {"query": "topic", "k": 1000, "group_by": "chunk"}},
        ),
        ("clusters k", "/api/clusters", {"json": {"k": 4837}}),
        ("deep metadata", "/api/documents", {"json": {"text": "x", "metadata": deep}}),
        (
            "surrogate",
            "/api/search",
            {"content": b'{"query": "\\ud800"}', "headers": {"content-type": "application/json"}},
        ),
    ]


async def ordinary(
    client: httpx.AsyncClient, stop: float, latencies: list[float], errors: list[str]
) -> None:
    """Alternate an embedding and a hybrid search until ``stop``."""
    n = 0
    while time.monotonic() < stop:
        n += 1
        if n % 2:
            request = client.post(
                "/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": f"query {n}"}
            )
        else:
            request = client.post("/api/search", json={"query": f"topic {n % 97} item"})
        start = time.perf_counter()
        response = await request
        latencies.append(time.perf_counter() - start)
        if response.status_code != 200:
            errors.append(f"{response.status_code} {response.text[:100]}")


async def hostile(
    client: httpx.AsyncClient,
    stop: float,
    statuses: dict[str, list[int]],
    requests: list[tuple[str, str, dict]],
) -> None:
    """Send each hostile request over and over, all kinds at once, until ``stop``."""

    async def repeat(name: str, path: str, kwargs: dict) -> None:
        while time.monotonic() < stop:
            response = await client.post(path, timeout=600, **kwargs)
            statuses.setdefault(name, []).append(response.status_code)

    await asyncio.gather(*(repeat(*request) for request in requests))


async def phase(
    url: str, pid: int, clients: int, seconds: float, requests: list[tuple[str, str, dict]]
) -> dict:
    """One phase: ordinary clients, beside ``requests`` (hostile) if any; latencies, peak RSS."""
    latencies: list[float] = []
    errors: list[str] = []
    statuses: dict[str, list[int]] = {}
    peak = rss_mb(pid)
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients + 16)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        tasks = [ordinary(client, stop, latencies, errors) for _ in range(clients)]
        if requests:
            tasks.append(hostile(client, stop, statuses, requests))
        work = asyncio.gather(*tasks)
        while not work.done():
            await asyncio.wait([work], timeout=0.5)
            peak = max(peak, rss_mb(pid))
        await work
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))],
        "errors": errors[:5],
        "error_count": len(errors),
        "peak_rss_mb": peak,
        "hostile": {name: sorted(set(codes)) for name, codes in statuses.items()},
    }


def seed(url: str) -> None:
    """1,200 short documents: over keyword search's large-collection threshold."""
    documents = [
        {"text": f"Document {i} about topic {i % 97} and item {i * 7 % 1013}."} for i in range(1200)
    ]
    response = httpx.post(
        f"{url}/api/documents?wait=true", json={"documents": documents}, timeout=600
    )
    response.raise_for_status()


def main() -> None:
    """Run both phases on one server and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=45)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_server(Path(tmp), timeout=600) as (url, proc, _),
    ):
        seed(url)
        requests = hostile_requests()  # built beforehand: a DOCX bomb takes seconds to deflate
        base = asyncio.run(phase(url, proc.pid, args.clients, args.seconds, []))
        loaded = asyncio.run(phase(url, proc.pid, args.clients, args.seconds, requests))
    report = {
        "clients": args.clients,
        "seconds": args.seconds,
        "baseline": base,
        "hostile": loaded,
        "p99_ratio": loaded["p99_ms"] / base["p99_ms"],
        "p50_ratio": loaded["p50_ms"] / base["p50_ms"],
        "targets": {"p99_ms": 1000, "peak_rss_mb": 1536},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
