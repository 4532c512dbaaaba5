"""HTML-safe snippets: a window of a chunk's text around the query's words, marked."""

from __future__ import annotations

import html
import re

# Private-use characters: FTS5 wraps matched words in these, then escaping leaves them alone.
OPEN, CLOSE = "\ue000", "\ue001"
SNIPPET_CHARS = 300
_MARKED = re.compile(f"{OPEN}(.*?){CLOSE}", re.DOTALL)


def snippet(text: str, marked: str | None = None, width: int = SNIPPET_CHARS) -> str:
    """About ``width`` characters of ``text`` (or of ``marked``, the text with OPEN/CLOSE around
    matched words) where the matches are densest, HTML-escaped, matches in ``<mark>``."""
    source = (marked or text).replace("\n", " ")
    starts = [m.start() for m in re.finditer(OPEN, source)]
    start, end = _window(source, starts, width)
    piece = html.escape(source[start:end].strip())
    # A mark cut in two by the window would leave a stray sentinel: drop any that remain.
    piece = _MARKED.sub(r"<mark>\1</mark>", piece).replace(OPEN, "").replace(CLOSE, "")
    return ("…" if start > 0 else "") + piece + ("…" if end < len(source) else "")


def _window(source: str, starts: list[int], width: int) -> tuple[int, int]:
    """The span of about ``width`` characters holding the most match starts, cut at spaces."""
    if len(source) <= width:
        return 0, len(source)
    best, first = 0, 0
    for i, position in enumerate(starts):
        count = sum(1 for other in starts[i:] if other < position + width * 0.8)
        if count > best:
            best, first = count, position
    # Some words before the first match give it context.
    start = 0 if first < width // 5 else _space_after(source, first - width // 5)
    end = _space_before(source, start + width) if start + width < len(source) else len(source)
    return start, end


def _space_after(source: str, position: int) -> int:
    """The first space at or after ``position`` (so the window starts on a word), else it."""
    found = source.find(" ", position)
    return position if found == -1 else found


def _space_before(source: str, position: int) -> int:
    """The last space before ``position`` (so the window ends on a word), else it."""
    found = source.rfind(" ", 0, position)
    return position if found <= 0 else found
