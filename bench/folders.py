"""Folders through the command line: ``embedsearch ingest FOLDER`` against the server's own
ingest rate, in one run, on one real server (the default backend).

Small files: 10,000 one-line notes of 8 words (2,000 with ``--quick``), one file each, sent by
the CLI, against the same texts sent as one JSON upload (``?wait=true``): texts/s of each and
the ratio (target >= 0.8). Large files: three files of 0.5 MB of text (two of 0.2 MB with
``--quick``), sent by the CLI, against each file uploaded on its own and waited for (what the
CLI did before it batched): the ratio (target >= 0.9, "large files keep today's speed").
Memory: the CLI's peak sending a 40 MB file (of a type the server refuses after reading it, so
only the sending counts) against a tiny one; it streams large files from disk, so it must not
grow with them.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.runner import Row, at_least, at_most, run_alone
from tests.support.live import WORDS, notes
from tests.support.server import running_server

CLI_MAX_MB = 200.0  # the CLI's peak memory sending large files: it streams them from disk
BLOB_MB = 40  # a file this large once took gigabytes; the CLI must not hold it in memory


def long_text(megabytes: float, seed: int) -> str:
    """About ``megabytes`` of prose-like text in paragraphs."""
    rng = random.Random(seed)
    paragraphs = []
    size = 0
    while size < megabytes * 1e6:
        sentences = [" ".join(rng.choices(WORDS, k=rng.randint(8, 20))) + "." for _ in range(6)]
        paragraphs.append(" ".join(sentences).capitalize())
        size += len(paragraphs[-1]) + 2
    return "\n\n".join(paragraphs)


def json_upload(url: str, collection: str, texts: list[str]) -> float:
    """Seconds to ingest the texts as one JSON upload, waiting for the job."""
    start = time.perf_counter()
    response = httpx.post(
        f"{url}/api/documents?wait=true",
        json={"collection": collection, "documents": [{"text": t} for t in texts]},
        timeout=3600,
    )
    assert response.json()["state"] == "done", response.text
    return time.perf_counter() - start


def one_by_one(url: str, collection: str, files: list[Path]) -> float:
    """Seconds to upload each file on its own and wait for it (the CLI's old way)."""
    start = time.perf_counter()
    for path in files:
        with path.open("rb") as f:
            response = httpx.post(
                f"{url}/api/documents?wait=true",
                files={"files": (path.name, f)},
                data={"collection": collection},
                timeout=3600,
            )
        assert response.json()["state"] == "done", response.text
    return time.perf_counter() - start


def cli(url: str, collection: str, path: Path, cache: Path, expect: int = 0) -> tuple[float, float]:
    """Seconds for ``embedsearch ingest PATH`` (start-up included) and its peak memory (MB)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    command = [sys.executable, "-m", "app", "ingest", str(path), "--url", url]
    start = time.perf_counter()
    process = subprocess.Popen(
        [*command, "--collection", collection],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)  # this child's own resource usage
    seconds = time.perf_counter() - start
    assert os.waitstatus_to_exitcode(status) == expect, f"ingest exit status {status}"
    return seconds, usage.ru_maxrss / 1024  # kB on Linux


def streamed_peak(url: str, root: Path, megabytes: int) -> tuple[float, float]:
    """The CLI's peak memory sending a tiny file, and a file of ``megabytes``: both of a type
    the server refuses once it has read them, so only the sending is measured."""
    peaks = []
    for size in (1, megabytes * 1_000_000):
        path = root / f"blob{size}.bin"
        with path.open("wb") as f:
            f.truncate(size)
        peaks.append(cli(url, "refused", path, root / "cache", expect=1)[1])
    return peaks[0], peaks[1]


def run(quick: bool, workdir: Path | None = None) -> dict:
    """Small files and large files, CLI against the server's own ingest, on one server."""
    count, large, megabytes = (2000, 2, 0.2) if quick else (10_000, 3, 0.5)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        texts = notes(random.Random(0), "n", count)
        small = root / "small"
        small.mkdir()
        for i, text in enumerate(texts):
            (small / f"note{i:05d}.txt").write_text(text)
        big = root / "large"
        big.mkdir()
        for i in range(large):
            (big / f"long{i}.txt").write_text(long_text(megabytes, seed=i))
        big_files = sorted(big.iterdir())
        (root / "server").mkdir()
        with running_server(root / "server", timeout=600) as (url, _, _):
            json_upload(url, "warmup", notes(random.Random(1), "w", 64))
            json_s = json_upload(url, "json", texts)
            cli_s, _ = cli(url, "cli", small, root / "cache")
            old_s = one_by_one(url, "one-by-one", big_files)
            new_s, peak_mb = cli(url, "cli-large", big, root / "cache")
            tiny_mb, blob_mb = streamed_peak(url, root, BLOB_MB)
    return {
        "files": count,
        "json_texts_per_s": count / json_s,
        "cli_files_per_s": count / cli_s,
        "small_ratio": json_s / cli_s,
        "large_files": large,
        "one_by_one_s": old_s,
        "cli_large_s": new_s,
        "large_ratio": old_s / new_s,
        "cli_peak_mb": peak_mb,
        "cli_tiny_file_mb": tiny_mb,
        "blob_mb": BLOB_MB,
        "cli_blob_mb": blob_mb,
    }


def rows(result: dict) -> list[Row]:
    """The summary table's rows."""
    return [
        Row("JSON upload (one request), texts/s", result["json_texts_per_s"], "texts/s"),
        Row(f"CLI ingest of {result['files']:,} small files", result["cli_files_per_s"], "files/s"),
        at_least("CLI small files / JSON upload", result["small_ratio"], 0.8, "x"),
        at_least("CLI large files / one upload each", result["large_ratio"], 0.9, "x"),
        at_most("CLI peak memory, large files", result["cli_peak_mb"], CLI_MAX_MB, "MB", 0),
        Row("CLI peak memory sending a tiny file", result["cli_tiny_file_mb"], "MB", digits=0),
        at_most(
            f"CLI peak memory sending a {result['blob_mb']} MB file",
            result["cli_blob_mb"],
            CLI_MAX_MB,
            "MB",
            0,
        ),
    ]


if __name__ == "__main__":
    run_alone("folders")
