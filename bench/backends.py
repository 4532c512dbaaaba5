"""Model backends: torch against ONNX fp32 and ONNX int8, raw encoder texts/s in one run.

Short texts are SciFact's claims; long texts are SciFact abstracts (title + text) cut to 200
tokens. Batches are as the engine makes them (up to ``--batch-tokens`` padded tokens). The
backends take turns, round after round, so a busy machine slows them alike; ratios are against
torch in this run. Also: the quality guard's mean cosine, and the mean cosine to torch on the
benchmark texts themselves. ONNX builds are cached under ``--data-dir``/models (built on first use).

    python -m bench.backends [--quick] [--data-dir data] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from app.embeddings.models import bundled_minilm
from app.embeddings.onnx import BACKENDS, load_encoder

SCIFACT = Path(__file__).resolve().parent.parent.parent / "shared/data/scifact"
LONG_TOKENS = 200


def texts() -> tuple[list[str], list[str]]:
    with (SCIFACT / "queries.jsonl").open() as f:
        short = [json.loads(line)["text"] for line in f]
    with (SCIFACT / "corpus.jsonl").open() as f:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer texts and rounds (< 2 min)")
    parser.add_argument("--data-dir", default="data", type=Path)
    parser.add_argument("--batch-tokens", default=16_384, type=int)
    parser.add_argument("--threads", default=0, type=int)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    spec = bundled_minilm()
    start = time.perf_counter()
    encoders = {b: load_encoder(spec, b, args.data_dir, args.threads) for b in BACKENDS}
    print(f"loaded (and built where needed) in {time.perf_counter() - start:.0f} s")
    for name, enc in encoders.items():
        if enc.backend != name:
            print(f"!! {name} fell back to {enc.backend}: {enc.fallback}")
    torch_enc = encoders["torch"]

    short, long = texts()
    n_short, n_long, rounds = (256, 64, 2) if args.quick else (1024, 256, 3)
    short_ids = [s[: torch_enc.max_tokens] for s in torch_enc.tokenize(short[:n_short])]
    long_ids = [s[:LONG_TOKENS] for s in torch_enc.tokenize(long[:n_long])]
    sets = {"short": short_ids, "long": long_ids}
    elapsed = {(b, s): 0.0 for b in BACKENDS for s in sets}
    vectors: dict[tuple[str, str], np.ndarray] = {}
    for enc in encoders.values():  # warm up
        enc.encode(short_ids[:8])
        enc.encode(long_ids[:8])
    for _ in range(rounds):
        for set_name, seqs in sets.items():
            work = batches(seqs, args.batch_tokens)
            for name, enc in encoders.items():
                begin = time.perf_counter()
                out = [enc.encode(batch) for batch in work]
                elapsed[name, set_name] += time.perf_counter() - begin
                vectors[name, set_name] = np.concatenate(out)

    rows = []
    for set_name, seqs in sets.items():
        tokens = sum(len(s) + 2 for s in seqs) * rounds
        base = len(seqs) * rounds / elapsed["torch", set_name]
        for name in BACKENDS:
            rate = len(seqs) * rounds / elapsed[name, set_name]
            cos = np.sum(vectors[name, set_name] * vectors["torch", set_name], axis=1)
            rows.append(
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
    print(
        f"{'texts':<6} {'tok/text':>8} {'backend':<10} {'texts/s':>8} {'tokens/s':>9} "
        f"{'x torch':>7} {'mean cos':>9} {'min cos':>8}"
    )
    for r in rows:
        print(
            f"{r['texts']:<6} {r['mean_tokens']:>8.0f} {r['backend']:<10} {r['texts_per_s']:>8.1f} "
            f"{r['tokens_per_s']:>9.0f} {r['ratio_to_torch']:>7.2f} {r['mean_cos_to_torch']:>9.5f} "
            f"{r['min_cos_to_torch']:>8.5f}"
        )
    guards = {}
    for name, enc in encoders.items():
        if name != "torch" and enc.backend == name:
            record = json.loads((enc.path.parent / "build.json").read_text())
            guards[name] = record["guard"]
            q = record.get("quantization")
            print(f"guard {name}: {record['guard']}" + (f" quantization {q}" if q else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "guards": guards}, f, indent=2)


if __name__ == "__main__":
    main()
