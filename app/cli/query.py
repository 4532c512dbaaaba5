"""``embedsearch search``, ``collections`` and ``documents``: what the server holds, as tables
(or JSON with --json)."""

from __future__ import annotations

import argparse
import html
import json
import re
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from app.cli.client import Server
from app.cli.display import setup_logging
from app.settings import Settings

_MARK = re.compile(r"<mark>(.*?)</mark>", re.DOTALL)


def search(settings: Settings, args: argparse.Namespace) -> int:
    """Search a collection; print ranked hits with highlighted snippets, or the JSON."""
    body = {"query": args.query, "collection": args.collection, "mode": args.mode, "k": args.k}
    page = _fetch(settings, args, "POST", "/api/search", json=body)
    if args.json:
        return _print_json(page)
    console = Console()
    if not page["hits"]:
        console.print(page.get("message") or "No hits.", highlight=False)
        return 0
    table = Table("#", "title", "score", "snippet", show_lines=True)
    for hit in page["hits"]:
        document = hit["document"]
        title = document["title"] or document["source_name"]
        table.add_row(str(hit["rank"]), title, f"{hit['score']:.3f}", highlighted(hit["snippet"]))
    console.print(table)
    console.print(f"{len(page['hits'])} of {page['total']} hits ({args.mode})", highlight=False)
    return 0


def collections(settings: Settings, args: argparse.Namespace) -> int:
    """List collections with their model and counts."""
    listing = _fetch(settings, args, "GET", "/api/collections")
    if args.json:
        return _print_json(listing)
    table = Table("collection", "documents", "chunks", "model", "backend")
    for c in listing["data"]:
        table.add_row(c["name"], str(c["documents"]), str(c["chunks"]), c["model"], c["backend"])
    Console().print(table)
    return 0


def documents(settings: Settings, args: argparse.Namespace) -> int:
    """List documents, newest first, optionally of one collection."""
    params: dict[str, Any] = {"limit": args.limit}
    if args.collection:
        params["collection"] = args.collection
    listing = _fetch(settings, args, "GET", "/api/documents", params=params)
    if args.json:
        return _print_json(listing)
    table = Table("id", "title", "source", "chunks", "updated")
    for d in listing["data"]:
        source = (d.get("metadata") or {}).get("path") or d["source_name"]
        table.add_row(str(d["id"]), d["title"], source, str(d["chunk_count"]), d["updated_at"])
    console = Console()
    console.print(table)
    console.print(f"{len(listing['data'])} of {listing['total']} documents", highlight=False)
    return 0


def highlighted(snippet: str) -> Text:
    """A search snippet (HTML with <mark>ed words) as terminal text, matched words in bold."""
    text = Text()
    position = 0
    for match in _MARK.finditer(snippet):
        text.append(html.unescape(snippet[position : match.start()]))
        text.append(html.unescape(match.group(1)), style="bold yellow")
        position = match.end()
    text.append(html.unescape(snippet[position:]))
    return text


def _fetch(settings: Settings, args: argparse.Namespace, method: str, path: str, **kw: Any) -> Any:
    setup_logging(Console(stderr=True), args.verbose)
    with Server(settings, args) as server:
        return server.json(method, path, **kw)


def _print_json(body: Any) -> int:
    print(json.dumps(body, indent=2, ensure_ascii=False))
    return 0
