"""Split document text into chunks that fit the embedding model's window."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import TYPE_CHECKING

from app.settings import DEFAULTS

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

WINDOW_CHARS = 64_000  # most characters tokenised at once (memory grows with it)

# Where a chunk may end, best first: a blank line, the end of a sentence, any whitespace.
# Each match ends where the next chunk's first token may start.
_CUTS = (
    re.compile(r"\n[^\S\n]*\n\s*"),
    re.compile(r"[.!?…][\"'”’)\]]*\s+|[。！？]\s*"),
    re.compile(r"\s+"),
)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A slice ``document_text[start:end]``, the heading path it sits under, and the document's
    title when the model reads it with this chunk."""

    text: str
    start: int
    end: int
    section: str
    token_count: int
    title: str = ""

    @property
    def embed_text(self) -> str:
        """The text given to the model: the title and the section path, each on a line of its
        own, then the chunk."""
        return "\n".join(part for part in (self.title, self.section, self.text) if part)


def chunk_text(
    text: str,
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_tokens: int = DEFAULTS.chunk_tokens,
    overlap: int = DEFAULTS.chunk_overlap,
    sections: list[tuple[int, str]] | None = None,
    title: str = "",
) -> list[Chunk]:
    """Chunks of ``text`` whose ``embed_text`` fits ``max_tokens``, none crossing a section.

    With a ``title`` (the document's own), every chunk that does not begin with it is embedded
    under it, as under its heading path: a chunk past the first still says what the document is
    about. The caller keeps ``max_tokens`` within the model's window (``Encoder.max_tokens``).
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    if not 0 <= overlap < max_tokens:
        raise ValueError(f"overlap must be at least 0 and below max_tokens, got {overlap}")
    chunks: list[Chunk] = []
    for group in _groups(_windows(text, _spans(text, sections or []))):
        chunks += _chunk_spans(text, group, tokenizer, max_tokens, overlap, title)
    return chunks


def _chunk_spans(
    text: str,
    spans: list[tuple[int, int, str]],
    tokenizer: PreTrainedTokenizerBase,
    max_tokens: int,
    overlap: int,
    title: str,
) -> list[Chunk]:
    """The chunks of some spans of ``text``, tokenised together."""
    heads = [_head(title, path) for _, _, path in spans]
    # One batched tokenizer call for every span and heading: per-sentence calls are slow.
    # verbose=False: inputs longer than the model's window are expected, splitting them is our job.
    encoded = tokenizer(
        [text[start:end] for start, end, _ in spans] + [head for head, _ in heads],
        add_special_tokens=False,
        return_offsets_mapping=True,
        verbose=False,
    )
    offsets, n = encoded["offset_mapping"], len(spans)
    chunks: list[Chunk] = []
    for k, (start, _, _) in enumerate(spans):
        # A heading may take at most half the budget, so that some text always fits.
        head = _whole_words(encoded.word_ids(n + k), max_tokens // 2)
        kept = heads[k][0][: offsets[n + k][head - 1][1]] if head else ""
        titled = heads[k][1]  # characters of the title at the heading's start
        splitter = _Splitter(
            text=text,
            tokens=[(start + a, start + b) for a, b in offsets[k]],
            words=encoded.word_ids(k),
            title=kept[:titled],
            section=kept[titled + 1 :] if titled else kept,
            head=head,
            title_tokens=sum(end <= titled for _, end in offsets[n + k][:head]),
            tokenizer=tokenizer,
            max_tokens=max_tokens,
        )
        chunks += splitter.split(overlap)
    return chunks


def _head(title: str, path: str) -> tuple[str, int]:
    """What the model reads before each chunk of a section, and how many of its characters are
    the title: the title (left out where the heading path starts with it), then the path."""
    if not title or path.startswith(title):
        return path, 0
    return (f"{title}\n{path}" if path else title), len(title)


def _windows(text: str, spans: list[tuple[int, int, str]]) -> Iterator[tuple[int, int, str]]:
    """The spans, a long one cut at its best boundaries into pieces of at most WINDOW_CHARS.

    Tokenising takes memory in proportion to the text at hand: pieces keep it bounded
    however long a document is.
    """
    for start, end, path in spans:
        while end - start > WINDOW_CHARS:
            lo, hi = start + WINDOW_CHARS // 2, start + WINDOW_CHARS
            cut = next(
                (
                    found
                    for pattern in _CUTS
                    if (found := _last_match(pattern, text, lo, hi)) is not None
                ),
                hi,
            )
            yield start, cut, path
            start = cut
        yield start, end, path


def _last_match(pattern: re.Pattern[str], text: str, lo: int, hi: int) -> int | None:
    """Where the last match of ``pattern`` in ``text[lo:hi]`` ends, if any."""
    return max((m.end() for m in pattern.finditer(text, lo, hi)), default=None)


def _groups(spans: Iterable[tuple[int, int, str]]) -> Iterator[list[tuple[int, int, str]]]:
    """Spans in groups of at most WINDOW_CHARS characters (a longer span alone)."""
    group: list[tuple[int, int, str]] = []
    size = 0
    for span in spans:
        if group and size + span[1] - span[0] > WINDOW_CHARS:
            yield group
            group, size = [], 0
        group.append(span)
        size += span[1] - span[0]
    if group:
        yield group


def _spans(text: str, sections: list[tuple[int, str]]) -> list[tuple[int, int, str]]:
    """``(start, end, heading path)`` of each non-blank section, text before the first included."""
    marks = [(0, ""), *sorted(sections)]
    ends = [start for start, _ in marks[1:]] + [len(text)]
    return [
        (start, end, path)
        for (start, path), end in zip(marks, ends, strict=True)
        if text[start:end].strip()
    ]


def _whole_words(words: list[int], limit: int) -> int:
    """How many leading tokens to keep, at most ``limit``, without splitting a word."""
    if len(words) <= limit:
        return len(words)
    while limit and words[limit - 1] == words[limit]:
        limit -= 1
    return limit


@dataclass
class _Splitter:
    """Cuts one section's tokens into chunks, preferring the best boundary in reach."""

    text: str
    tokens: list[tuple[int, int]]  # character offsets of each token in text
    words: list[int]  # word index of each token
    title: str
    section: str
    head: int  # tokens the title and section path add to each chunk
    title_tokens: int  # of those, the title's
    tokenizer: PreTrainedTokenizerBase
    max_tokens: int

    def split(self, overlap: int) -> list[Chunk]:
        """Chunks that fit ``max_tokens``, each sharing about ``overlap`` tokens with the last."""
        n, budget = len(self.tokens), self.max_tokens - self.head
        if not n:  # only characters the tokenizer drops (control, zero-width): nothing to embed
            return []
        # Never cut before half the budget, and keep the overlap below that, so chunks
        # stay substantial and every step moves forward.
        overlap = min(overlap, budget // 2)
        chunks, i = [], 0
        while True:
            j = n if n - i <= budget else self._best_cut(i + budget // 2 + 1, i + budget)
            chunk, j = self._chunk(i, j)
            chunks.append(chunk)
            if j == n:
                return chunks
            i = self._word_start(max(j - overlap, i + 1), j)

    def _best_cut(self, lo: int, hi: int) -> int:
        """The last cut before a token in ``lo..hi`` of the best kind there, else ``hi``."""
        for pattern in _CUTS:
            end = _last_match(pattern, self.text, self.tokens[lo - 1][0], self.tokens[hi][0])
            if end is not None:
                return self._token_at(end)
        return hi

    def _word_start(self, lo: int, hi: int) -> int:
        """The first token in ``lo..hi-1`` that starts a word, else ``lo``."""
        space = _CUTS[-1].search(self.text, self.tokens[lo - 1][1], self.tokens[hi - 1][0])
        return self._token_at(space.end()) if space else lo

    def _token_at(self, offset: int) -> int:
        """The first token that starts at or after character ``offset``."""
        return bisect_left(self.tokens, offset, key=itemgetter(0))

    def _chunk(self, i: int, j: int) -> tuple[Chunk, int]:
        """The chunk of tokens ``i:j``, shortened while its embed_text is over the limit."""
        while True:
            start, end = self.tokens[i][0], self.tokens[j - 1][1]
            text, title, head = self.text[start:end], self.title, self.head
            if title and text.startswith(title):  # the document's first lines: said already
                title, head = "", head - self.title_tokens
            chunk = Chunk(text, start, end, self.section, head + j - i, title)
            if self._splits_word(i) or self._splits_word(j):
                # A word cut in two re-tokenizes differently: count the real thing.
                ids = self.tokenizer(chunk.embed_text, add_special_tokens=False)["input_ids"]
                chunk = replace(chunk, token_count=len(ids))
            if chunk.token_count <= self.max_tokens or j - i == 1:
                return chunk, j
            j -= 1

    def _splits_word(self, k: int) -> bool:
        """Whether a cut before token ``k`` falls inside a word."""
        return 0 < k < len(self.words) and self.words[k - 1] == self.words[k]
