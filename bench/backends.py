"""Model backends: torch against ONNX fp32 and ONNX int8, raw encoder texts/s in one run.

Short texts are SciFact's claims; long texts are SciFact abstracts (title + text) cut to 200
tokens. Batches are as the engine makes them (up to ``BATCH_TOKENS`` padded tokens). The
backends take turns, round after round, so a busy machine slows them alike; ratios are against
torch in this run. Also: the quality guard's mean cosine, and the mean cosine to torch on the
benchmark texts themselves. ONNX builds are cached in ``tests.support.server.MODELS`` (built on first
use).
"""

from __future__ import annotations

import json
import time

import numpy as np

from app.embeddings.backends import BACKENDS, load_encoder
from app.embeddings.encoder import encode_batches
from app.embeddings.models import bundled_minilm
from app.embeddings.onnx_build import ModelCache
from bench.runner import Row, at_least, run_alone
from tests.support.datasets import dataset
from tests.support.server import MODELS

LONG_TOKENS = 200
BATCH_TOKENS = 16_384
INT8_TARGET = 2.5  # onnx-int8 texts/s over torch's, on both text lengths (issue 17)


def texts() -> tuple[list[str], list[str]]:
    scifact = dataset("scifact")
    with (scifact / "queries.jsonl").open() as f:
        short = [json.loads(line)["text"] for line in f]
    with (scifact / "corpus.jsonl").open() as f:
        docs = [json.loads(line) for line, _ in zip(f, range(3000), strict=False)]
    long = [f"{d['title']} {d['text']}" for d in docs]
    return short, long


def batches(seqs: list[list[int]], budget: int) -> list[list[list[int]]]:
    """Length-sorted batches of at most ``budget`` padded tokens, as the engine forms them."""
    seqs = sorted(seqs, key=len)
    out, batch = [], []
    for seq in seqs:
        width = len(seq) + 2
        if batch and width * (len(batch) + 1) > budget:
            out.append(batch)
            batch = []
        batch.append(seq)
    return [*out, batch] if batch else out


def run(quick: bool = False) -> dict:
    """Texts/s of each backend on short and long texts, taking turns; ratios to torch."""
    spec = bundled_minilm()
    backends = ("torch", "onnx-int8") if quick else BACKENDS  # quick: only what has a target
    start = time.perf_counter()
    cache = ModelCache(MODELS)
    encoders = {b: load_encoder(spec, b, cache=cache) for b in backends}
    load_s = time.perf_counter() - start
    torch_enc = encoders["torch"]

    short, long = texts()
    n_short, n_long, rounds = (128, 32, 2) if quick else (1024, 256, 3)
    short_ids = [s[: torch_enc.max_tokens] for s in torch_enc.tokenize(short[:n_short])]
    long_ids = [s[:LONG_TOKENS] for s in torch_enc.tokenize(long[:n_long])]
    sets = {"short": short_ids, "long": long_ids}
    elapsed = {(b, s): 0.0 for b in backends for s in sets}
    vectors: dict[tuple[str, str], np.ndarray] = {}
    for enc in encoders.values():  # warm up
        enc.encode(short_ids[:8])
        enc.encode(long_ids[:8])
    for _ in range(rounds):
        for set_name, seqs in sets.items():
            work = batches(seqs, BATCH_TOKENS)
            for name, enc in encoders.items():
                begin = time.perf_counter()
                out = encode_batches(enc, work)
                elapsed[name, set_name] += time.perf_counter() - begin
                vectors[name, set_name] = np.concatenate(out)

    figures = []
    for set_name, seqs in sets.items():
        tokens = sum(len(s) + 2 for s in seqs) * rounds
        base = len(seqs) * rounds / elapsed["torch", set_name]
        for name in backends:
            rate = len(seqs) * rounds / elapsed[name, set_name]
            cos = np.sum(vectors[name, set_name] * vectors["torch", set_name], axis=1)
            figures.append(
                {
                    "texts": set_name,
                    "mean_tokens": tokens / rounds / len(seqs),
                    "backend": name,
                    "texts_per_s": rate,
                    "tokens_per_s": tokens / elapsed[name, set_name],
                    "ratio_to_torch": rate / base,
                    "mean_cos_to_torch": float(cos.mean()),
                    "min_cos_to_torch": float(cos.min()),
                }
            )
    guards = {}
    for name, enc in encoders.items():
        if name != "torch" and enc.backend == name:
            record = json.loads((enc.path.parent / "build.json").read_text())
            guards[name] = {"guard": record["guard"], "quantization": record.get("quantization")}
    fallbacks = {name: enc.fallback for name, enc in encoders.items() if enc.backend != name}
    return {"load_s": load_s, "rows": figures, "guards": guards, "fallbacks": fallbacks}


def table(result: dict) -> str:
    """Every backend on both text sets, as a Markdown table."""
    lines = [
        "| texts | tokens/text | backend | texts/s | tokens/s | x torch | mean cos | min cos |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['texts']} | {r['mean_tokens']:.0f} | {r['backend']} | {r['texts_per_s']:.1f} | "
            f"{r['tokens_per_s']:.0f} | {r['ratio_to_torch']:.2f} | {r['mean_cos_to_torch']:.5f} | "
            f"{r['min_cos_to_torch']:.5f} |"
        )
    for name, fallback in result["fallbacks"].items():
        lines.append(f"\n!! {name} fell back to torch: {fallback}")
    return "\n".join(lines)


def rows(result: dict) -> list[Row]:
    """torch and int8 texts/s per text length, and int8's ratio to torch against its target."""
    out = []
    for r in result["rows"]:
        label = f"{r['texts']} texts (~{r['mean_tokens']:.0f} tokens)"
        if r["backend"] == "torch":
            out.append(Row(f"raw torch, {label}", r["texts_per_s"], "texts/s", digits=0))
        elif r["backend"] == "onnx-int8":
            out.append(Row(f"raw onnx-int8, {label}", r["texts_per_s"], "texts/s", digits=0))
            if "onnx-int8" in result["fallbacks"]:
                label += ", FELL BACK TO TORCH"
            out.append(
                at_least(f"onnx-int8 / torch, {label}", r["ratio_to_torch"], INT8_TARGET, "x")
            )
    return out


if __name__ == "__main__":
    run_alone("backends")
