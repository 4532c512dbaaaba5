"""``embedsearch search``, ``collections`` and ``documents`` against a real server, and the
errors a person can act on (no server, wrong key)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from app.cli.query import highlighted
from tests.support.api import API_KEY


def test_search_collections_documents(serve, cli) -> None:
    served = serve()
    records = [
        {"title": "Lakes", "text": "Alpine lakes are cold and clear in summer."},
        {"title": "Deserts", "text": "Deserts are dry; cacti store water."},
    ]
    httpx.post(
        f"{served.url}/api/documents?wait=true",
        json={"collection": "geo", "documents": records},
    )
    found = cli("search", "cold lakes", "--collection", "geo", "--url", served.url, "-k", "1")
    assert found.returncode == 0, found.stderr
    assert "Lakes" in found.stdout and "Alpine lakes are cold" in found.stdout
    assert "1 of" in found.stdout and "Deserts" not in found.stdout
    as_json = cli(
        "search", "cacti", "--collection", "geo", "--mode", "keyword", "--json", "--url", served.url
    )
    page = json.loads(as_json.stdout)
    assert page["hits"][0]["document"]["title"] == "Deserts"
    listed = cli("collections", "--url", served.url)
    assert "geo" in listed.stdout and "all-MiniLM-L6-v2" in listed.stdout
    documents = cli("documents", "--collection", "geo", "--url", served.url)
    assert "Lakes" in documents.stdout and "2 of 2 documents" in documents.stdout
    missing = cli("search", "x", "--collection", "nope", "--url", served.url)
    assert missing.returncode == 2 and "nope" in missing.stderr


def test_snippet_marks_become_bold_text() -> None:
    text = highlighted("…cold <mark>lakes</mark> &amp; <mark>rivers</mark>")
    assert text.plain == "…cold lakes & rivers"
    assert [text.plain[span.start : span.end] for span in text.spans] == ["lakes", "rivers"]


def test_no_server_says_how_to_start_one(cli, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    for command in (["ingest", str(tmp_path)], ["search", "x"], ["collections"]):
        result = cli(*command, "--url", "http://127.0.0.1:9")
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            "embedsearch: No server at http://127.0.0.1:9: start one with `embedsearch serve`, "
            "or pass --url."
        ]


def test_wrong_key_says_which_option(serve, cli, tmp_path: Path) -> None:
    served = serve(api_keys=[API_KEY])
    (tmp_path / "a.txt").write_text("x")
    result = cli("ingest", str(tmp_path), "--url", served.url, "--key", "wrong")
    assert result.returncode == 2 and "--key" in result.stderr
    assert "1 added" in cli("ingest", str(tmp_path), "--url", served.url, "--key", API_KEY).stdout
