"""Snippets: escaped, marked, cut around the matches at word boundaries."""

from __future__ import annotations

from app.search.snippets import CLOSE, OPEN, snippet


def mark(word: str) -> str:
    return f"{OPEN}{word}{CLOSE}"


def test_short_text_is_whole_and_escaped() -> None:
    text = "Fish & <chips> taste good"
    marked = text.replace("chips", mark("chips"))
    assert snippet(text, marked) == "Fish &amp; &lt;<mark>chips</mark>&gt; taste good"


def test_no_match_gives_the_start() -> None:
    text = " ".join(f"word{i}" for i in range(200))
    result = snippet(text, None, width=60)
    assert result.startswith("word0 word1") and result.endswith("…")
    assert len(result) <= 61


def test_window_follows_the_densest_matches() -> None:
    words = [f"w{i}" for i in range(300)]
    words[10] = mark("cat")
    for i in (200, 203, 206):
        words[i] = mark("dog")
    result = snippet(
        " ".join(w.replace(OPEN, "").replace(CLOSE, "") for w in words), " ".join(words), 80
    )
    assert result.count("<mark>dog</mark>") == 3 and "cat" not in result
    assert result.startswith("…") and result.endswith("…")
    assert not result.startswith("… ") and " …" not in result  # cut at spaces, trimmed


def test_markup_in_the_text_stays_text() -> None:
    text = '<script>alert("x")</script> danger'
    result = snippet(text, text.replace("danger", mark("danger")))
    assert "<script>" not in result and "&lt;script&gt;" in result
    assert result.endswith("<mark>danger</mark>")


def test_newlines_become_spaces() -> None:
    assert snippet("one\ntwo") == "one two"
