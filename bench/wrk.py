"""HTTP at the engine's limit: wrk (Debian's ``wrk``) against the raw engine, in one run.

wrk costs the server's cores almost nothing, so what HTTP loses here is the server's own cost.
Each case runs in short rounds, each wrk round right after a round of the raw engine (the same
encoder in this process): the ratio is the median of the rounds' ratios, as the machine's speed
drifts within a minute. The server's CPU time over a wrk round, less the raw engine's CPU per
text times the texts served, is the CPU each request costs outside the model. The load average
is reported beside each case: others' work on the machine skews every figure.

Cases: one short text (a SciFact claim) per request at 1, 16, 64 and 256 connections; 32
ingestion-sized texts (~200 tokens) per request at 16 connections. A timed round drops the requests
still in flight when it ends, up to one per connection: negligible for short texts, but a 32-text
request costs seconds of a slow machine's model, so that case sends a fixed number of requests
(``fixed_work``) and times the first send to the last answer. Then a search user beside a
busy server: searches one after another while 64 wrk connections send short texts and a bulk
upload of SciFact ingests, p50/p99 of the searches (the engine serves a search query first).
Without ``wrk`` on the PATH the rows say "not run".

    python -m bench --only wrk [--quick]   (or python -m bench.wrk)
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.embeddings import MODEL, load_default_encoder, rate_and_cpu, short_texts
from bench.ingest import cpu_seconds, records, upload
from bench.runner import Row, at_least, at_most, p99, run_alone
from tests.support.server import running_server

CLIENTS = (1, 16, 64, 256)
LONG_TOKENS = 200  # an ingestion chunk's size (the chunk_tokens default)
LONG_PER_REQUEST = 32
WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
JSON = {"Content-Type": "application/json"}


def lua_script(bodies: list[str]) -> str:
    """A wrk script that POSTs one of ``bodies``, chosen at random, per request."""
    quoted = ",\n".join(json.dumps(body) for body in bodies)  # JSON strings are Lua strings here
    return (
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"local bodies = {{\n{quoted}\n}}\n"
        "math.randomseed(1)\n"
        "request = function()\n"
        "  return wrk.format(nil, nil, nil, bodies[math.random(#bodies)])\n"
        "end\n"
    )


def bodies(texts: list[str], per_request: int, count: int = 500) -> list[str]:
    """``count`` request bodies of ``per_request`` texts each, as the openai client sends them."""
    rng = random.Random(per_request)
    return [
        json.dumps(
            {"model": MODEL, "input": rng.sample(texts, per_request), "encoding_format": "base64"}
        )
        for _ in range(count)
    ]


def wrk(url: str, script: Path, clients: int, seconds: float) -> dict:
    """Requests/s, p50/p99 latency and non-2xx answers of one wrk run."""
    command = [
        "wrk",
        "-t1",
        f"-c{clients}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "30s",
        "-s",
        str(script),
        f"{url}/v1/embeddings",
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    return {
        "requests_per_s": rate,
        "p50_ms": _latency(out, "50%"),
        "p99_ms": _latency(out, "99%"),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(0) if errors else None,
    }


def fixed_work(url: str, requests: list[str], clients: int) -> dict:
    """Requests/s and p50/p99 latency of sending ``requests`` over ``clients`` connections, each
    connection sending its next one when its last is answered, from the first send to the last
    answer (the model stays busy to the end: a request's texts run on every core)."""
    pending = iter(requests)
    lock = threading.Lock()
    latencies: list[float] = []
    failed = 0

    def connection() -> None:
        nonlocal failed
        with httpx.Client(base_url=url, timeout=600) as http:
            while True:
                with lock:
                    body = next(pending, None)
                if body is None:
                    return
                start = time.perf_counter()
                answer = http.post("/v1/embeddings", content=body, headers=JSON)
                with lock:
                    latencies.append((time.perf_counter() - start) * 1000)
                    failed += answer.status_code >= 300

    threads = [threading.Thread(target=connection) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "requests_per_s": len(requests) / elapsed,
        "seconds": elapsed,
        "p50_ms": statistics.median(latencies),
        "p99_ms": p99(latencies),
        "non_2xx": failed,
    }


def _latency(out: str, percentile: str) -> float:
    value, unit = re.search(rf"^\s+{percentile}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
    return float(value) * WRK_UNITS[unit]


def long_texts(encoder: Any, count: int = 2000) -> list[str]:
    """SciFact abstracts cut to their first ``LONG_TOKENS`` tokens: ingestion-sized texts."""
    docs = [doc["text"] for doc in records(count)]
    ids = encoder.tokenize(docs)
    return [encoder.tokenizer.decode(seq[:LONG_TOKENS]) for seq in ids if len(seq) >= LONG_TOKENS]


def case(
    url: str, pid: int, encoder: Any, texts: list[str], per_request: int, clients: int, plan: dict
) -> dict:
    """One case's interleaved rounds: raw, then wrk; ratios, CPU outside the model, load."""
    load_before = os.getloadavg()[0]
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "bodies.lua"
        requests = bodies(texts, per_request)
        script.write_text(lua_script(requests))
        raw_size = max(per_request, 8)  # int8 runs each row alone: batch size barely matters
        seconds = plan["seconds"]
        for _ in range(plan["rounds"]):
            raw_rate, raw_cpu = rate_and_cpu(encoder, texts, raw_size, seconds)
            cpu = cpu_seconds(pid)
            if per_request == 1:
                # A round must outlast a few turns of every connection, however slow the machine.
                seconds = min(max(plan["seconds"], round(4 * clients / raw_rate)), 30)
                http = wrk(url, script, clients, seconds)
            else:  # two turns of every connection, or the plan's seconds of the raw engine
                count = max(2 * clients, round(plan["seconds"] * raw_rate / per_request))
                http = fixed_work(url, requests[:count], clients)
                seconds = http["seconds"]
            served = http["requests_per_s"] * seconds
            outside = (cpu_seconds(pid) - cpu) / served - per_request * raw_cpu if served else None
            rounds.append((raw_rate, http, outside))
    ratios = [http["requests_per_s"] * per_request / raw for raw, http, _ in rounds]
    return {
        "clients": clients,
        "texts_per_request": per_request,
        "texts_per_s": statistics.mean(h["requests_per_s"] * per_request for _, h, _ in rounds),
        "raw_texts_per_s": statistics.mean(raw for raw, _, _ in rounds),
        "ratio_to_raw": statistics.median(ratios),
        "ratios": ratios,
        "cpu_ms_outside_model": _median_ms([o for _, _, o in rounds if o is not None]),
        "p50_ms": statistics.median(h["p50_ms"] for _, h, _ in rounds),
        "p99_ms": max(h["p99_ms"] for _, h, _ in rounds),
        "non_2xx": sum(h["non_2xx"] for _, h, _ in rounds),
        "load_average": (load_before, os.getloadavg()[0]),
    }


def query_under_load(url: str, script: Path, seconds: int, quick: bool) -> dict:
    """p50/p99 of searches, one at a time, under 64 wrk connections and a bulk upload."""
    docs = records(300 if quick else 2000)
    seed, bulk = docs[:50], docs[50:]
    upload(url, seed, "default")  # something to search (where a search without a collection looks)
    load = subprocess.Popen(
        ["wrk", "-t1", "-c64", f"-d{seconds}s", "-s", str(script), f"{url}/v1/embeddings"],
        stdout=subprocess.DEVNULL,
    )
    uploading = threading.Thread(target=upload, args=(url, bulk, "default", False))
    uploading.start()
    load_before = os.getloadavg()[0]
    queries = short_texts()
    latencies = []
    deadline = time.perf_counter() + seconds - 1
    with httpx.Client(base_url=url, timeout=60) as http:
        time.sleep(1)  # let the load build up
        while time.perf_counter() < deadline:
            body = {"query": queries[len(latencies) % len(queries)], "k": 10}
            start = time.perf_counter()
            http.post("/api/search", json=body).raise_for_status()
            latencies.append((time.perf_counter() - start) * 1000)
    load.wait()
    uploading.join()
    latencies.sort()
    return {
        "searches": len(latencies),
        "p50_ms": statistics.median(latencies),
        "p99_ms": p99(latencies),
        "load_average": (load_before, os.getloadavg()[0]),
    }


def _median_ms(seconds: list[float]) -> float | None:
    return 1000 * statistics.median(seconds) if seconds else None


def run(quick: bool = False) -> dict:
    """Every case, against one server; ``{"skipped": why}`` without wrk."""
    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed (Debian: apt-get install wrk)"}
    plan = (
        {"rounds": 2, "seconds": 2} if quick else {"rounds": 5, "seconds": 3}
    )  # wrk: whole seconds
    encoder = load_default_encoder()
    short = short_texts()
    long = long_texts(encoder, 300 if quick else 2000)
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp)) as (url, proc, _):
        warm = {"rounds": 1, "seconds": 1}
        case(url, proc.pid, encoder, short, 1, 16, warm)
        cases = [case(url, proc.pid, encoder, short, 1, n, plan) for n in CLIENTS]
        cases.append(case(url, proc.pid, encoder, long, LONG_PER_REQUEST, 16, plan))
        with tempfile.TemporaryDirectory() as scripts:
            script = Path(scripts) / "bodies.lua"
            script.write_text(lua_script(bodies(short, 1)))
            query = query_under_load(url, script, 10 if quick else 30, quick)
    return {"cases": cases, "query_under_load": query}


def _name(c: dict) -> str:
    texts = "1 short text" if c["texts_per_request"] == 1 else f"{c['texts_per_request']} x 200 tok"
    return f"wrk {c['clients']} conn, {texts}"


def table(result: dict) -> str:
    """The cases as a Markdown table."""
    if "skipped" in result:
        return f"skipped: {result['skipped']}"
    lines = [
        "| case | texts/s | raw texts/s beside it | x raw (median of rounds) | CPU ms/request "
        "outside the model | p50 ms | p99 ms | non-2xx | load average |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in result["cases"]:
        lines.append(
            f"| {_name(c)} | {c['texts_per_s']:.0f} | {c['raw_texts_per_s']:.0f} | "
            f"{c['ratio_to_raw']:.2f} | {_shown(c['cpu_ms_outside_model'])} | {c['p50_ms']:.1f} | "
            f"{c['p99_ms']:.1f} | {c['non_2xx']} | "
            f"{c['load_average'][0]:.1f} -> {c['load_average'][1]:.1f} |"
        )
    q = result["query_under_load"]
    lines.append(
        f"\nSearches under 64 wrk connections and a bulk upload: {q['searches']} searches, "
        f"p50 {q['p50_ms']:.1f} ms, p99 {q['p99_ms']:.1f} ms (load average "
        f"{q['load_average'][0]:.1f} -> {q['load_average'][1]:.1f})"
    )
    return "\n".join(lines)


def _shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def rows(result: dict) -> list[Row]:
    """HTTP/raw per case against its target, and CPU per request outside the model."""
    if "skipped" in result:
        return [Row(f"wrk cases ({result['skipped']})", None)]
    out = []
    for c in result["cases"]:
        load = f"load {c['load_average'][0]:.1f}"
        measure = f"{_name(c)} / raw ({load})"
        if c["clients"] == 1:  # one client at a time cannot keep the model busy: no target
            out.append(Row(measure, c["ratio_to_raw"], "x"))
        else:
            target = 0.98 if c["texts_per_request"] > 1 else 0.9
            out.append(at_least(measure, c["ratio_to_raw"], target, "x"))
        if c["texts_per_request"] == 1 and c["clients"] == 16:
            out.append(
                at_most(
                    f"CPU per request outside the model, 16 conn ({load})",
                    c["cpu_ms_outside_model"],
                    0.3,
                    "ms",
                )
            )
    short = {c["clients"]: c for c in result["cases"] if c["texts_per_request"] == 1}
    for clients in (64, 256):  # more clients must not lower throughput (rates drift: use ratios)
        scaled = short[clients]["ratio_to_raw"] / short[16]["ratio_to_raw"]
        out.append(at_least(f"wrk {clients} conn / 16 conn, short texts", scaled, 1.0, "x"))
    q = result["query_under_load"]
    load = f"load {q['load_average'][0]:.1f}"
    measure = f"search p99 under 64 wrk conn + bulk upload ({load})"
    out.append(Row(f"search p50 under 64 wrk conn + bulk upload ({load})", q["p50_ms"], "ms"))
    out.append(at_most(measure, q["p99_ms"], 50, "ms"))
    return out


if __name__ == "__main__":
    run_alone("wrk")
