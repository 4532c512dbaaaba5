"""PDF and DOCX files are read in a child process: over a limit, that file fails with a reason."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.errors import Unprocessable
from app.ingest.sandbox import SandboxLimits, extract_sandboxed
from tests.support.api import assert_error
from tests.support.hostile import docx_bomb, many_pages_pdf

LIMITS = SandboxLimits(cpu_seconds=60, memory_bytes=512 * 2**20, timeout=60)
SLOW_PDF = many_pages_pdf(40, 100_000)  # ~0.2 s of CPU a page, 100 KB on disk


def run(filename: str, data: bytes, limits: SandboxLimits = LIMITS, gone=None) -> list:
    return asyncio.run(extract_sandboxed(filename, data, limits, gone))


def test_a_readable_pdf_and_docx_come_back_whole() -> None:
    [pdf] = run("fine.pdf", many_pages_pdf(2, 60))
    assert pdf.source_type == "pdf" and "x" in pdf.text and pdf.metadata == {"pages": 2}
    [document] = run("fine.docx", docx_bomb(3))
    assert document.text.count("word word word") == 3


def test_a_pdf_over_the_cpu_limit_fails_fast() -> None:
    start = time.monotonic()
    with pytest.raises(Unprocessable, match="EMBEDSEARCH_EXTRACT_CPU_SECONDS"):
        run("slow.pdf", SLOW_PDF, SandboxLimits(1, 512 * 2**20, 60))
    assert time.monotonic() - start < 10


def test_a_pdf_over_the_wall_time_is_killed() -> None:
    start = time.monotonic()
    with pytest.raises(Unprocessable, match="EMBEDSEARCH_EXTRACT_TIMEOUT"):
        run("slow.pdf", SLOW_PDF, SandboxLimits(60, 512 * 2**20, 1))
    assert time.monotonic() - start < 5


def test_a_docx_over_the_memory_limit_fails() -> None:
    with pytest.raises(Unprocessable, match="EMBEDSEARCH_EXTRACT_MEMORY_MB"):
        run("bomb.docx", docx_bomb(400_000), SandboxLimits(60, 200 * 2**20, 60))


def test_the_child_is_killed_when_the_client_leaves() -> None:
    async def gone() -> bool:
        return True

    start = time.monotonic()
    with pytest.raises(Unprocessable, match="abandoned"):
        run("slow.pdf", SLOW_PDF, gone=gone)
    assert time.monotonic() - start < 3


def test_a_hostile_upload_fails_alone_and_quickly(make_client) -> None:
    client = make_client(extract_cpu_seconds=1)
    files = [("files", ("slow.pdf", SLOW_PDF)), ("files", ("fine.txt", b"still goes in"))]
    start = time.monotonic()
    job = client.post("/api/documents?wait=true", files=files).json()
    assert time.monotonic() - start < 15
    results = {f["name"]: f for f in job["result"]["files"]}
    assert "EMBEDSEARCH_EXTRACT_CPU_SECONDS" in results["slow.pdf"]["error"]
    assert results["fine.txt"]["status"] == "added"
    alone = client.post("/api/documents", files={"files": ("slow.pdf", SLOW_PDF)})
    assert "EMBEDSEARCH_EXTRACT_CPU_SECONDS" in assert_error(alone, 422)["message"]
