"""Sending many files: packed into uploads under the server's limits, a few uploads in flight,
and their ingestion jobs followed together."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from app.cli.client import Limits, Server, error_message
from app.cli.display import Display, Outcome

SMALL_FILE = 1 << 20  # bytes; smaller files are read into memory, larger ones stream from disk
PART_BYTES = 512  # multipart headers of one file and its path field, besides the names
FORM_BYTES = 4096  # the rest of the form (collection field, boundaries), with room to spare
POLL_SECONDS = 0.25
STATUS = {"added": "added", "replaced": "replaced", "failed": "failed"}  # any other: unchanged


@dataclass(frozen=True)
class LocalFile:
    """A file to send: where it is, what to call it, its size, and its path in a synced folder."""

    path: Path
    name: str
    size: int
    synced: str | None = None


def pack(files: list[LocalFile], limits: Limits) -> tuple[list[list[LocalFile]], list[LocalFile]]:
    """Uploads of at most the server's files and bytes each, and the files too large to send."""
    budget = limits.max_bytes - FORM_BYTES
    batches: list[list[LocalFile]] = []
    too_large = []
    batch: list[LocalFile] = []
    size = 0
    for file in files:
        cost = file.size + PART_BYTES + 2 * len(file.name.encode())
        if cost > budget:
            too_large.append(file)
            continue
        if batch and (len(batch) == limits.max_files or size + cost > budget):
            batches.append(batch)
            batch, size = [], 0
        batch.append(file)
        size += cost
    if batch:
        batches.append(batch)
    return batches, too_large


class Uploader:
    """Sends files to a collection, ``in_flight`` uploads at a time, and records each outcome."""

    def __init__(
        self,
        server: Server,
        limits: Limits,
        collection: str,
        display: Display,
        outcome: Outcome,
        in_flight: int = 3,
    ) -> None:
        self.server = server
        self.limits = limits
        self.collection = collection
        self.display = display
        self.outcome = outcome
        self.in_flight = in_flight

    def send(self, files: list[LocalFile]) -> None:
        """Send every file; failures are recorded with their reasons, never raised."""
        batches, too_large = pack(files, self.limits)
        for file in too_large:
            self._fail(
                file,
                f"too large ({file.size / 1e6:.1f} MB): the server takes at most "
                f"{self.limits.max_bytes / 1e6:.1f} MB per upload (EMBEDSEARCH_MAX_UPLOAD_BYTES)",
            )
        # Uploads overlap: the server reads and extracts one while it embeds another.
        with ThreadPoolExecutor(self.in_flight, thread_name_prefix="embedsearch-upload") as pool:
            for future in [pool.submit(self._upload, batch) for batch in batches]:
                future.result()

    def _upload(self, batch: list[LocalFile]) -> None:
        """One upload and its job, start to end."""
        opened: list[IO[bytes]] = []
        parts: list[tuple[str, tuple[str, Any]]] = []
        sent: list[LocalFile] = []
        try:
            for file in batch:
                try:
                    content = file.path.read_bytes() if file.size <= SMALL_FILE else None
                    if content is None:
                        opened.append(file.path.open("rb"))
                except OSError as exc:
                    self._fail(file, f"cannot read it: {exc.strerror or exc}")
                    continue
                parts.append(("files", (file.path.name, content or opened[-1])))
                sent.append(file)
            if not sent:
                return
            data: dict[str, Any] = {"collection": self.collection}
            if sent[0].synced is not None:
                data["paths"] = [file.synced for file in sent]
            response = self.server.call("POST", "/api/documents", files=parts, data=data)
        finally:
            for handle in opened:
                handle.close()
        if response.status_code >= 400:
            message = error_message(response)
            for file in sent:
                self._fail(file, _reason(message, file.path.name))
            return
        self._tally(sent, self._follow(response.json()))

    def _follow(self, job: dict[str, Any]) -> dict[str, Any]:
        """Wait for a job to end, moving the chunk bar as it embeds."""
        done = total = 0
        while True:
            progress = job["progress"]
            self.display.advance(
                "chunks", done=progress["done"] - done, total=progress["total"] - total
            )
            done, total = progress["done"], progress["total"]
            if job["state"] in ("done", "failed"):
                return job
            time.sleep(POLL_SECONDS)
            job = self.server.json("GET", f"/api/jobs/{job['id']}")

    def _tally(self, sent: list[LocalFile], job: dict[str, Any]) -> None:
        """Record each file's outcome from its job's result (files in the order sent)."""
        results = (job.get("result") or {}).get("files", [])
        if job["state"] == "failed" or len(results) != len(sent):
            for file in sent:
                self._fail(file, job.get("error") or "the ingestion job failed")
            return
        for file, result in zip(sent, results, strict=True):
            status = STATUS.get(result["status"], "unchanged")
            self.outcome.add(status, file.name, result["error"])
            self.display.advance("files", done=1)

    def _fail(self, file: LocalFile, reason: str) -> None:
        self.outcome.add("failed", file.name, reason)
        self.display.advance("files", done=1)


def _reason(message: str, name: str) -> str:
    """A file's own reason inside the server's "None of the files could be read" message."""
    marker = f"{name}: "
    if marker not in message:
        return message
    return message.split(marker, 1)[1].split("; ", 1)[0]
