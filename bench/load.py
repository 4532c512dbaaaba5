"""Load benchmark: many concurrent clients mixing embeddings calls, searches and uploads.

One real server on 127.0.0.1 holds a few hundred SciFact documents; 64 clients (by default) send
for 60 s: 70% embeddings (1-8 claims), 25% hybrid searches, 5% small uploads. Reports p50/p99
per route, every error that is not a deliberate 429, and the server's RSS at start and end.
``--quick``: 15 s on 50 documents. Not in a plain ``python -m bench``: run it with ``--only load``.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

from bench.embeddings import short_texts
from bench.ingest import records
from bench.runner import Row, at_most, p99, run_alone
from tests.support.server import running_server


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return (
        int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
        / 1024
    )


async def load(url: str, clients: int, seconds: float) -> dict:
    """Run the mixed load; return latencies and statuses per route."""
    claims = short_texts()
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    deadline = time.perf_counter() + seconds

    async def client(http: httpx.AsyncClient, rng: random.Random) -> None:
        n = 0
        while time.perf_counter() < deadline:
            n += 1
            roll = rng.random()
            if roll < 0.70:
                route = "POST /v1/embeddings"
                body = {"model": "all-MiniLM-L6-v2", "input": rng.sample(claims, rng.randint(1, 8))}
                call = http.post("/v1/embeddings", json=body)
            elif roll < 0.95:
                route = "POST /api/search"
                call = http.post("/api/search", json={"query": rng.choice(claims), "k": 10})
            else:
                route = "POST /api/documents"
                text = f"Load test note {rng.random()}: " + " ".join(rng.sample(claims, 3))
                call = http.post("/api/documents", json={"text": text, "collection": "load"})
            start = time.perf_counter()
            response = await call
            latencies[route].append((time.perf_counter() - start) * 1000)
            statuses[route][response.status_code] += 1
            if response.status_code == 429:
                await asyncio.sleep(float(response.headers.get("retry-after", "1")))

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as http:
        await asyncio.gather(*(client(http, random.Random(i)) for i in range(clients)))
    routes = {}
    for route, values in sorted(latencies.items()):
        values.sort()
        routes[route] = {
            "requests": len(values),
            "p50_ms": statistics.median(values),
            "p99_ms": p99(values),
            "statuses": dict(statuses[route]),
        }
    return routes


def run(quick: bool = False, clients: int = 64) -> dict:
    """Seed a server with documents, measure RSS, load it, measure RSS again."""
    seconds = 15 if quick else 60
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp)) as (url, proc, _):
        body = "\n".join(json.dumps(d) for d in records(50 if quick else 300)).encode()
        httpx.post(
            f"{url}/api/documents?wait=true", files={"files": ("seed.jsonl", body)}, timeout=3600
        )
        start_rss = rss_mb(proc.pid)
        routes = asyncio.run(load(url, clients, seconds))
        end_rss = rss_mb(proc.pid)
    errors = {
        route: {s: n for s, n in r["statuses"].items() if s >= 400 and s != 429}
        for route, r in routes.items()
    }
    return {
        "clients": clients,
        "seconds": seconds,
        "routes": routes,
        "unexpected_errors": {k: v for k, v in errors.items() if v},
        "rss_start_mb": start_rss,
        "rss_end_mb": end_rss,
    }


def table(result: dict) -> str:
    """The results as a Markdown table."""
    lines = [
        f"{result['clients']} clients for {result['seconds']} s; server RSS "
        f"{result['rss_start_mb']:.0f} MB -> {result['rss_end_mb']:.0f} MB; unexpected errors: "
        f"{result['unexpected_errors'] or 'none'}",
        "",
        "| route | requests | p50 ms | p99 ms | statuses |",
        "|---|---:|---:|---:|---|",
    ]
    for route, r in result["routes"].items():
        lines.append(
            f"| {route} | {r['requests']} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['statuses']} |"
        )
    return "\n".join(lines)


def rows(result: dict) -> list[Row]:
    """p50 per route, errors other than 429 (there should be none) and RSS growth."""
    out = [
        Row(f"{route} p50", r["p50_ms"], "ms", digits=0) for route, r in result["routes"].items()
    ]
    errors = sum(n for statuses in result["unexpected_errors"].values() for n in statuses.values())
    out.append(at_most(f"errors other than 429, {result['clients']} clients", errors, 0, digits=0))
    out.append(
        Row("server RSS growth", result["rss_end_mb"] - result["rss_start_mb"], "MB", digits=0)
    )
    return out


if __name__ == "__main__":
    run_alone("load")
