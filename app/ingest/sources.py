"""What a job ingests, file by file, and what became of each: stored with the job as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict

from app.ingest.extract import Extracted

SHOWN_FAILURES = 5  # reasons a file's error names; the count says how many more there were


class FileSummary(TypedDict):
    """What became of one file, as a job's result shows it."""

    name: str
    path: str | None
    status: str
    added: int
    replaced: int
    duplicate: int
    failed: int
    documents: list[int]
    error: str | None


class JobSummary(TypedDict):
    """A job's result: totals over its files, then each file."""

    added: int
    replaced: int
    duplicate: int
    failed: int
    files: list[FileSummary]


@dataclass
class Source:
    """One uploaded file (or JSON body): its extracted documents, or why it failed, and what
    became of them."""

    name: str
    documents: list[Extracted] = field(default_factory=list)
    error: str | None = None  # why the file could not be read at all
    path: str | None = None  # relative to a synced folder (app.ingest.synced)
    added: int = 0
    replaced: int = 0
    duplicate: int = 0
    document_ids: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # why each failed document failed

    @property
    def status(self) -> str:
        """failed, replaced, added, duplicate or queued: what happened to the file as a whole."""
        if self.error or (self.failures and not self.added + self.replaced + self.duplicate):
            return "failed"
        if self.replaced:
            return "replaced"
        if self.added:
            return "added"
        return "duplicate" if self.duplicate else "queued"

    def fail(self, document: Extracted, reason: str) -> None:
        """Record that one of the file's documents failed, and why."""
        named = len(self.documents) > 1  # a record of a JSON file is named by its title
        self.failures.append(f"{document.title!r}: {reason}" if named else reason)

    def summary(self) -> FileSummary:
        """The file's outcome as JSON."""
        reasons = ([self.error] if self.error else []) + self.failures[:SHOWN_FAILURES]
        if len(self.failures) > SHOWN_FAILURES:
            reasons.append(f"and {len(self.failures) - SHOWN_FAILURES} more documents failed")
        return {
            "name": self.name,
            "path": self.path,
            "status": self.status,
            "added": self.added,
            "replaced": self.replaced,
            "duplicate": self.duplicate,
            "failed": len(self.failures),
            "documents": self.document_ids,
            "error": "; ".join(reasons) or None,
        }


def sources_payload(sources: list[Source]) -> list[dict[str, Any]]:
    """Sources as JSON, for a job any replica can run."""
    return [
        {
            "name": s.name,
            "path": s.path,
            "error": s.error,
            "documents": [asdict(d) for d in s.documents],
        }
        for s in sources
    ]


def sources_from_payload(
    payload: list[dict[str, Any]], result: dict[str, Any] | None
) -> list[Source]:
    """Sources from a job's payload, with what an earlier attempt's ``result`` recorded."""
    earlier = {i: f for i, f in enumerate((result or {}).get("files", []))}
    sources = []
    for i, item in enumerate(payload):
        documents = [
            Extracted(**(d | {"sections": [tuple(s) for s in d["sections"]]}))
            for d in item["documents"]
        ]
        source = Source(item["name"], documents, error=item["error"], path=item["path"])
        if done := earlier.get(i):
            source.added, source.replaced = done["added"], done["replaced"]
            source.duplicate, source.document_ids = done["duplicate"], list(done["documents"])
        sources.append(source)
    return sources


def summary(sources: list[Source]) -> JobSummary:
    """Totals over the files: documents added, replaced and duplicate; files with an error."""
    files = [source.summary() for source in sources]
    return {
        "added": sum(f["added"] for f in files),
        "replaced": sum(f["replaced"] for f in files),
        "duplicate": sum(f["duplicate"] for f in files),
        "failed": sum(1 for f in files if f["error"]),
        "files": files,
    }
