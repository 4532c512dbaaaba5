"""Extract PDF and DOCX files in a child process with CPU-time, memory and wall-clock limits.

Their parsers can be made to work for an hour (2,000 pages sharing one huge content stream) or
to take gigabytes (a DOCX that honestly inflates to 190 MB of XML). In a child process, under
``setrlimit`` and at a lower priority, such a file fails alone with a reason; the server never
stalls on it, and the child is killed when its time is up, the client leaves or the server stops.

Run as ``python -m app.ingest.sandbox CPU_SECONDS MEMORY_BYTES``: the file's name (one line)
and bytes on stdin, the documents (or the error) as JSON on stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import PureWindowsPath

from app.errors import AppError, Unprocessable
from app.ingest.extract import Extracted, extract
from app.settings import Settings

SANDBOXED = (".pdf", ".docx")  # the types whose parsers a crafted file can run away with
POLL = 0.25  # seconds between checks that the client is still there


@dataclass(frozen=True)
class SandboxLimits:
    """What one extraction may take: CPU seconds, bytes of address space, seconds of wall time."""

    cpu_seconds: int
    memory_bytes: int
    timeout: float

    @classmethod
    def of(cls, settings: Settings) -> SandboxLimits:
        """The limits these settings set."""
        return cls(
            settings.extract_cpu_seconds,
            settings.extract_memory_mb * 1024 * 1024,
            settings.extract_timeout,
        )


def sandboxed(filename: str) -> bool:
    """True for the file types extracted in a child process."""
    return PureWindowsPath(filename).suffix.lower() in SANDBOXED


async def extract_sandboxed(
    filename: str,
    data: bytes,
    limits: SandboxLimits,
    gone: Callable[[], Awaitable[bool]] | None = None,
) -> list[Extracted]:
    """The documents in a PDF or DOCX, extracted in a limited child; Unprocessable if over a limit.

    ``gone`` says whether the client has left: then the child is killed at once.
    """
    label = PureWindowsPath(filename).name
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.ingest.sandbox",
        str(limits.cpu_seconds),
        str(limits.memory_bytes),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,  # parsers warn thousands of times on a bad file
    )
    payload = filename.replace("\n", " ").encode("utf-8", "replace") + b"\n" + data
    talk = asyncio.ensure_future(child.communicate(payload))
    deadline = asyncio.get_running_loop().time() + limits.timeout
    try:
        while not talk.done():
            await asyncio.wait({talk}, timeout=POLL)
            if talk.done():
                break
            if asyncio.get_running_loop().time() > deadline:
                raise Unprocessable(
                    f"Reading {label} took longer than {limits.timeout:g} s "
                    "(EMBEDSEARCH_EXTRACT_TIMEOUT): split it, or save it again and retry."
                )
            if gone is not None and await gone():
                raise Unprocessable(f"The upload of {label} was abandoned by the client.")
        output, _ = talk.result()
    finally:
        if child.returncode is None:  # over time, client gone, or the server is stopping
            child.kill()
            await child.wait()
        talk.cancel()
    if child.returncode != 0 or not output:
        raise _failure(label, child.returncode or 0, limits)
    answer = json.loads(output)
    if "error" in answer:
        raise Unprocessable(answer["error"])
    documents = [Extracted(**document) for document in answer["documents"]]
    for document in documents:
        document.sections = [(offset, path) for offset, path in document.sections]
    return documents


def _failure(label: str, code: int, limits: SandboxLimits) -> Unprocessable:
    """Why the child died, as the file's error."""
    if code == -signal.SIGXCPU:
        return Unprocessable(
            f"Reading {label} needed more than {limits.cpu_seconds} s of CPU "
            "(EMBEDSEARCH_EXTRACT_CPU_SECONDS): split it, or save it again and retry."
        )
    return Unprocessable(
        f"Reading {label} needed more than {limits.memory_bytes // 2**20} MB of memory "
        "(EMBEDSEARCH_EXTRACT_MEMORY_MB), or crashed the parser: split it, or save it again."
    )


def _child(cpu_seconds: int, memory_bytes: int) -> None:
    """The child's side: limit itself, extract one file from stdin, answer on stdout."""
    import logging
    import resource
    import warnings

    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    os.nice(10)  # interactive requests first
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    filename = sys.stdin.buffer.readline().decode("utf-8", "replace").rstrip("\n")
    data = sys.stdin.buffer.read()
    try:
        answer: dict = {"documents": [asdict(d) for d in extract(filename, data)]}
    except MemoryError:
        sys.exit(3)
    except AppError as error:
        # Parsers report running out of memory in their own words ("unknown error").
        if _peak_memory() > 0.9 * memory_bytes:
            sys.exit(3)
        answer = {"error": error.message}
    sys.stdout.write(json.dumps(answer))


def _peak_memory() -> int:
    """The most address space this process has held, in bytes (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmPeak:"):
                return int(line.split()[1]) * 1024
    return 0


if __name__ == "__main__":
    _child(int(sys.argv[1]), int(sys.argv[2]))
