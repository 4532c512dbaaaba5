"""Presentation helpers for the pages: sizes, dates, pagination, chunk segments, heat, curl."""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from fastapi import Request

from app.store.records import Chunk


def filesize(size: int) -> str:
    """A byte count for people: 900 B, 12.3 KB, 4.0 MB."""
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def when(stamp: str) -> str:
    """An ISO 8601 timestamp as '21 Nov 2025, 14:04 UTC'."""
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    return moment.strftime("%-d %b %Y, %H:%M UTC")


def query(request: Request, **changes: object) -> str:
    """This page's query string with some parameters changed (None drops one)."""
    params = {**request.query_params, **changes}
    return "?" + urlencode({k: v for k, v in params.items() if v not in (None, "")})


def whole_number(raw: str) -> int | None:
    """``raw`` as a non-negative integer SQLite can hold, or None."""
    if not (raw.isascii() and raw.isdigit()):
        return None
    number = int(raw)
    return number if number < 2**63 else None


def page_number(raw: str, last: int) -> int:
    """A 1-based page number from a query parameter, clamped to 1..last."""
    return max(1, min(whole_number(raw) or 1, last))


@dataclass(frozen=True)
class Pager:
    """Where a page sits among all of them."""

    number: int
    pages: int
    total: int

    @classmethod
    def of(cls, number: int, total: int, size: int, limit: int | None = None) -> Pager:
        """The pager for page ``number`` of ``total`` items, ``size`` a page (``limit`` at most)."""
        reachable = total if limit is None else min(total, limit)
        return cls(number, max(1, math.ceil(reachable / size)), total)

    @property
    def previous(self) -> int | None:
        """The previous page's number, if any."""
        return self.number - 1 if self.number > 1 else None

    @property
    def next(self) -> int | None:
        """The next page's number, if any."""
        return self.number + 1 if self.number < self.pages else None


@dataclass(frozen=True)
class Segment:
    """A run of document text covered by the same chunks, and the chunks starting there."""

    text: str
    kind: str  # "even" or "odd" (the covering chunk's parity), "overlap", or "outside"
    starts: list[Chunk]


def segments(text: str, chunks: list[Chunk]) -> list[Segment]:
    """Cut ``text`` at every chunk boundary, so chunks (and their overlaps) can be shown."""
    cuts = sorted({0, len(text), *(c.start for c in chunks), *(c.end for c in chunks)})
    pieces = []
    for start, end in zip(cuts, cuts[1:], strict=False):
        covering = [c for c in chunks if c.start <= start and end <= c.end]
        if len(covering) > 1:
            kind = "overlap"
        elif covering:
            kind = "odd" if covering[0].seq % 2 else "even"
        else:
            kind = "outside"
        starts = [c for c in chunks if c.start == start]
        pieces.append(Segment(text[start:end], kind, starts))
    return pieces


def heat(similarity: float) -> int:
    """A similarity as one of 11 colour steps (0 for anything at or below 0, 10 for 1)."""
    return max(0, min(10, round(similarity * 10)))


def curl_command(base_url: str, model: str, texts: list[str], with_key: bool) -> str:
    """The shell command that embeds ``texts`` through /v1/embeddings."""
    body = json.dumps({"model": model, "input": texts}, ensure_ascii=False)
    lines = [f"curl {base_url}/v1/embeddings", "  -H 'Content-Type: application/json'"]
    if with_key:
        lines.append('  -H "Authorization: Bearer $EMBEDSEARCH_API_KEY"')
    lines.append(f"  -d {shlex.quote(body)}")
    return " \\\n".join(lines)
