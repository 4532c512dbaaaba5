"""Embeddings benchmark: the raw engine in-process against the HTTP endpoint, in one run.

Raw: the bundled model's encoder (tokenise + forward) over the texts, at its best batch size,
texts/s, and the latency of a batch of one. HTTP: a real server on 127.0.0.1; 1, 4, 16 and 64
concurrent clients each sending 1-8 short texts (SciFact claims) per request, as the openai
client does (base64). This machine's speed drifts by 10-20% within a minute, so each client count
runs in short rounds, each round right after a round of the raw engine: the ratio is the median
of the rounds' ratios.

    python -m bench --only embeddings [--quick]   (or python -m bench.embeddings)
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from app.embeddings.encoder import encode_batches
from bench.runner import Row, at_least, at_most, p99, run_alone
from tests.support.datasets import dataset
from tests.support.server import MODELS, running_server

MODEL = "all-MiniLM-L6-v2"


def short_texts() -> list[str]:
    """Real short texts: SciFact's claims (about 15-25 tokens each)."""
    with (dataset("scifact") / "queries.jsonl").open() as f:
        return [json.loads(line)["text"] for line in f]


def load_default_encoder() -> Any:
    """The encoder the server runs: the default backend, from the same cache of builds."""
    from app.embeddings.backends import load_encoder
    from app.embeddings.models import bundled_minilm
    from app.settings import Settings

    return load_encoder(bundled_minilm(), Settings().backend, MODELS)


def raw_engine(encoder: Any, texts: list[str], seconds: float) -> dict:
    """Texts/s of the encoder alone at several batch sizes, and batch-of-one latency.

    Two orders: as clients send them (random), and length-sorted (the best case, where every
    batch holds texts of one length and pads nothing).
    """
    lengths = [len(ids) for ids in encoder.tokenize(texts)]
    orders = {
        "random": random_order(texts),
        "sorted": [text for _, text in sorted(zip(lengths, texts, strict=True))],
    }
    encoder.encode(encoder.tokenize(texts[:8]))  # warm up
    result: dict = {}
    for name, ordered in orders.items():
        rates = {size: _rate(encoder, ordered, size, seconds) for size in (1, 8, 32, 64, 128)}
        best = max(rates, key=rates.get)
        result[name] = {
            "texts_per_s_by_batch": rates,
            "best_batch": best,
            "texts_per_s": rates[best],
        }
    latencies = []
    for text in texts[:200]:
        start = time.perf_counter()
        encoder.encode(encoder.tokenize([text]))
        latencies.append((time.perf_counter() - start) * 1000)
    return {
        **result,
        "texts_per_s": result["random"]["texts_per_s"],
        "single_p50_ms": statistics.median(latencies),
    }


def random_order(texts: list[str]) -> list[str]:
    """The texts shuffled, the same way every run."""
    return random.Random(0).sample(texts, len(texts))


def _rate(encoder: Any, ordered: list[str], size: int, seconds: float) -> float:
    """Texts/s encoding batches of ``size``, as many at once as the encoder runs in parallel."""
    return rate_and_cpu(encoder, ordered, size, seconds)[0]


def rate_and_cpu(
    encoder: Any, ordered: list[str], size: int, seconds: float
) -> tuple[float, float]:
    """Texts/s of the raw engine (tokenise + encode, batches of ``size``, as many at once as the
    encoder runs in parallel) and its CPU seconds per text."""
    done, cpu, start = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - start < seconds:
        batches = []
        for _ in range(encoder.concurrency):
            offset = done % len(ordered)
            batches.append(encoder.tokenize(ordered[offset : offset + size]))
            done += len(batches[-1])
        encode_batches(encoder, batches)
    return done / (time.perf_counter() - start), (time.process_time() - cpu) / done


async def http_load(url: str, texts: list[str], clients: int, seconds: float) -> dict:
    """Texts/s and latency with ``clients`` concurrent clients for ``seconds``."""
    rng = random.Random(clients)
    latencies: list[float] = []
    count = 0
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal count, errors
        while time.perf_counter() < deadline:
            batch = rng.sample(texts, rng.randint(1, 8))
            body = {"model": MODEL, "input": batch, "encoding_format": "base64"}
            start = time.perf_counter()
            async with http.post("/v1/embeddings", json=body) as r:
                await r.read()
            latencies.append((time.perf_counter() - start) * 1000)
            if r.status == 200:
                count += len(batch)
            else:
                errors += 1

    async with _session(url, clients) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "clients": clients,
        "texts_per_s": count / elapsed,
        "p50_ms": statistics.median(latencies),
        "p99_ms": p99(latencies),
        "errors": errors,
    }


async def single_latency(url: str, texts: list[str], n: int = 200) -> float:
    """p50 latency of one short text, one request at a time."""
    async with _session(url, 1) as http:
        latencies = []
        for text in texts[:n]:
            start = time.perf_counter()
            async with http.post("/v1/embeddings", json={"model": MODEL, "input": text}) as r:
                await r.read()
            latencies.append((time.perf_counter() - start) * 1000)
    return statistics.median(latencies)


def _session(url: str, clients: int) -> aiohttp.ClientSession:
    # aiohttp rather than httpx: the load generator shares the server's two cores, and aiohttp
    # takes about a quarter of httpx's CPU per request (0.04 against 0.17 cores at 16 clients).
    connector = aiohttp.TCPConnector(limit=clients)
    return aiohttp.ClientSession(url, connector=connector, timeout=aiohttp.ClientTimeout(60))


def run(quick: bool = False) -> dict:
    """Measure raw and HTTP in one run and return the figures with their ratios."""
    texts = short_texts()
    seconds = 3 if quick else 10
    rounds, round_seconds = (2, 1.5) if quick else (8, 2.0)
    encoder = load_default_encoder()
    raw = raw_engine(encoder, texts, seconds / 2)
    best = raw["random"]["best_batch"]
    loads = []
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp)) as (url, _, _):
        asyncio.run(http_load(url, texts, 4, 2))  # warm up
        single = asyncio.run(single_latency(url, texts, 50 if quick else 200))
        for clients in (1, 4, 16, 64):
            runs = []
            for _ in range(rounds):
                rate = _rate(encoder, random_order(texts), best, round_seconds)
                runs.append((rate, asyncio.run(http_load(url, texts, clients, round_seconds))))
            loads.append(_combined(clients, runs))
    for load in loads:
        load["ratio_to_sorted"] = load["texts_per_s"] / raw["sorted"]["texts_per_s"]
    return {
        "raw": raw,
        "http": loads,
        "http_single_p50_ms": single,
        "single_overhead_ms": single - raw["single_p50_ms"],
    }


def _combined(clients: int, runs: list[tuple[float, dict]]) -> dict:
    """One client count's rounds: mean rates, and the median of the rounds' HTTP/raw ratios."""
    ratios = [http["texts_per_s"] / raw for raw, http in runs]
    return {
        "clients": clients,
        "texts_per_s": statistics.mean(http["texts_per_s"] for _, http in runs),
        "raw_texts_per_s": statistics.mean(raw for raw, _ in runs),
        "ratio_to_raw": statistics.median(ratios),
        "ratios": ratios,
        "p50_ms": statistics.median(http["p50_ms"] for _, http in runs),
        "p99_ms": max(http["p99_ms"] for _, http in runs),
        "errors": sum(http["errors"] for _, http in runs),
    }


def table(result: dict) -> str:
    """The results as a Markdown table."""
    raw = result["raw"]
    lines = [
        f"raw engine, random order: {raw['random']['texts_per_s']:.0f} texts/s (best batch "
        f"{raw['random']['best_batch']}); length-sorted: {raw['sorted']['texts_per_s']:.0f} texts/s "
        f"(best batch {raw['sorted']['best_batch']}); batch-of-one p50 {raw['single_p50_ms']:.2f} ms",
        f"HTTP single short request p50 {result['http_single_p50_ms']:.2f} ms "
        f"(+{result['single_overhead_ms']:.2f} ms over raw)",
        "",
        "| clients | texts/s | raw texts/s beside it | x raw (median of rounds) | x raw (sorted) "
        "| p50 ms | p99 ms | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for load in result["http"]:
        lines.append(
            f"| {load['clients']} | {load['texts_per_s']:.0f} | {load['raw_texts_per_s']:.0f} | "
            f"{load['ratio_to_raw']:.2f} | "
            f"{load['ratio_to_sorted']:.2f} | "
            f"{load['p50_ms']:.1f} | {load['p99_ms']:.1f} | {load['errors']} |"
        )
    return "\n".join(lines)


def rows(result: dict) -> list[Row]:
    """The summary rows of ``python -m bench``: raw, HTTP per client count, single-request p50."""
    raw = result["raw"]
    out = [
        Row("raw engine, short texts, random order", raw["texts_per_s"], "texts/s", digits=0),
        Row("raw engine, length-sorted", raw["sorted"]["texts_per_s"], "texts/s", digits=0),
    ]
    for load in result["http"]:
        clients = f"HTTP, {load['clients']} client{'s' if load['clients'] > 1 else ''}"
        out.append(Row(clients, load["texts_per_s"], "texts/s", digits=0))
        if load["clients"] == 16:
            beside = f"raw {load['raw_texts_per_s']:.0f} texts/s in the rounds between"
            ratio = f"{clients} / raw engine, median of rounds ({beside})"
            out.append(at_least(ratio, load["ratio_to_raw"], 0.9, "x"))
    out.append(at_most("HTTP single short request p50", result["http_single_p50_ms"], 10, "ms"))
    return out


if __name__ == "__main__":
    run_alone("embeddings")
