"""Chunking: exact offsets, token limits, overlap, boundaries and sections."""

from __future__ import annotations

import pytest

from app.ingest.chunking import WINDOW_CHARS, Chunk, chunk_text
from tests.support.documents import long_text

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank. "


def count(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def check(text: str, chunks: list[Chunk], tokenizer, max_tokens: int) -> None:
    """The invariants every chunking must keep."""
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip() and chunk.text
        assert chunk.token_count == count(tokenizer, chunk.embed_text) <= max_tokens
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert before.start < after.start


def test_short_text_is_one_chunk(tokenizer) -> None:
    text = "  A short note.\n"
    [chunk] = chunk_text(text, tokenizer)
    assert (chunk.text, chunk.start, chunk.end, chunk.section) == ("A short note.", 2, 15, "")
    assert chunk.embed_text == "A short note." and chunk.token_count == 4


@pytest.mark.parametrize("text", ["", "   \n\n\t ", "\u200b\u200b"])
def test_blank_text_gives_no_chunks(tokenizer, text: str) -> None:
    assert chunk_text(text, tokenizer) == []


def test_long_text_fits_and_overlaps(tokenizer) -> None:
    text = SENTENCE * 60
    chunks = chunk_text(text, tokenizer, max_tokens=100, overlap=20)
    check(text, chunks, tokenizer, 100)
    assert len(chunks) > 5
    assert chunks[0].start == 0 and chunks[-1].end == len(text.rstrip())
    for before, after in zip(chunks, chunks[1:], strict=False):
        shared = text[after.start : before.end]
        assert 10 <= count(tokenizer, shared) <= 20
        # Chunks end at a sentence end when there is one in reach, and start at a word.
        assert before.text.endswith(".") and text[after.start - 1] == " "


def test_no_overlap(tokenizer) -> None:
    text = SENTENCE * 30
    chunks = chunk_text(text, tokenizer, max_tokens=50, overlap=0)
    check(text, chunks, tokenizer, 50)
    assert all(a.end <= b.start for a, b in zip(chunks, chunks[1:], strict=False))


def test_paragraphs_are_preferred_to_sentences(tokenizer) -> None:
    first = SENTENCE * 5  # about 70 tokens
    text = first + "\n\n" + SENTENCE * 5
    [one, two] = chunk_text(text, tokenizer, max_tokens=100, overlap=0)
    assert one.text == first.strip()
    assert two.start == len(first) + 2


def test_words_are_kept_whole_without_punctuation(tokenizer) -> None:
    text = " ".join(f"word{n}" for n in range(300))
    chunks = chunk_text(text, tokenizer, max_tokens=60, overlap=10)
    check(text, chunks, tokenizer, 60)
    words = set(text.split())
    assert all(set(chunk.text.split()) <= words for chunk in chunks)


def test_sections_are_respected_and_embedded(tokenizer) -> None:
    intro = "Preface text.\n\n"
    setup = "# Setup\n\n" + SENTENCE * 20
    usage = "# Usage\n\nRun it."
    text = intro + setup + usage
    sections = [(len(intro), "Guide > Setup"), (len(intro + setup), "Guide > Usage")]
    chunks = chunk_text(text, tokenizer, max_tokens=80, overlap=10, sections=sections)
    check(text, chunks, tokenizer, 80)
    assert chunks[0].section == "" and chunks[0].text == "Preface text."
    assert chunks[-1].section == "Guide > Usage" and chunks[-1].text == usage
    middle = chunks[1:-1]
    assert len(middle) > 1 and all(c.section == "Guide > Setup" for c in middle)
    assert all(len(intro) <= c.start and c.end <= len(intro + setup) for c in middle)
    assert middle[0].embed_text == "Guide > Setup\n" + middle[0].text


def test_a_huge_heading_path_is_trimmed(tokenizer) -> None:
    path = " > ".join(f"heading{n}" for n in range(100))
    chunks = chunk_text("Body text. " * 50, tokenizer, max_tokens=50, sections=[(0, path)])
    check("Body text. " * 50, chunks, tokenizer, 50)
    assert path.startswith(chunks[0].section) and count(tokenizer, chunks[0].section) <= 25


def test_a_text_without_spaces_is_cut_hard(tokenizer) -> None:
    text = "漢字仮名交じり文" * 100  # every character is a token
    chunks = chunk_text(text, tokenizer, max_tokens=50, overlap=10)
    check(text, chunks, tokenizer, 50)
    assert max(c.token_count for c in chunks) == 50
    assert chunks[-1].end == len(text)


def test_words_cut_in_two_are_counted_again(tokenizer) -> None:
    text = "Pneumonoultramicroscopicsilicovolcanoconiosis" * 2  # one word of many word pieces
    chunks = chunk_text(text, tokenizer, max_tokens=5, overlap=1)
    check(text, chunks, tokenizer, 5)
    assert chunks[0].start == 0 and chunks[-1].end == len(text)


def test_a_single_huge_word(tokenizer) -> None:
    text = "x" * 10_000  # longer than the tokenizer spells out: one unknown token
    [chunk] = chunk_text(text, tokenizer)
    check(text, [chunk], tokenizer, 200)


def test_unicode_offsets_are_exact(tokenizer) -> None:
    text = (
        "Emoji 😀👩‍👩‍👧 here. שלום עולם, مرحبا بالعالم. Zero\u200bwidth\u200djoin. "
        "Combining e\u0301 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢. "
    ) * 20
    chunks = chunk_text(text, tokenizer, max_tokens=40, overlap=8)
    check(text, chunks, tokenizer, 40)
    assert len(chunks) > 3


@pytest.mark.parametrize(
    ("max_tokens", "overlap", "message"),
    [
        (0, 0, "max_tokens"),
        (100, 100, "overlap"),
        (100, -1, "overlap"),
    ],
)
def test_bad_parameters(tokenizer, max_tokens: int, overlap: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        chunk_text("text", tokenizer, max_tokens=max_tokens, overlap=overlap)


def test_the_window_limit_is_allowed(tokenizer) -> None:
    text = SENTENCE * 40
    window = 254  # all-MiniLM-L6-v2's 256 less [CLS] and [SEP]
    check(text, chunk_text(text, tokenizer, max_tokens=window), tokenizer, window)


def test_chunking_tokenises_a_bounded_piece_at_a_time(tokenizer, monkeypatch) -> None:
    seen: list[int] = []

    def spy(texts, **kwargs):
        seen.append(sum(len(t) for t in texts))
        return tokenizer(texts, **kwargs)

    text = long_text(60_000)
    assert len(text) > 4 * WINDOW_CHARS
    chunks = chunk_text(text, spy)
    assert max(seen) <= WINDOW_CHARS
    covered = bytearray(len(text))
    for chunk in chunks:
        covered[chunk.start : chunk.end] = b"x" * (chunk.end - chunk.start)
    assert all(covered[i] or text[i].isspace() for i in range(len(text)))
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)


def test_a_title_is_embedded_with_every_chunk_that_does_not_start_with_it(tokenizer) -> None:
    title = "Otters of the northern rivers"
    text = f"{title} {SENTENCE * 30}"
    chunks = chunk_text(text, tokenizer, max_tokens=60, overlap=10, title=title)
    check(text, chunks, tokenizer, 60)
    assert len(chunks) > 2
    # The first chunk says the title already; the others are read under it.
    assert chunks[0].title == "" and chunks[0].embed_text == chunks[0].text
    assert all(c.title == title and c.section == "" for c in chunks[1:])
    assert chunks[1].embed_text == f"{title}\n{chunks[1].text}"


def test_a_title_goes_before_the_section_path_unless_the_path_starts_with_it(tokenizer) -> None:
    text = "Preface text.\n\n# Setup\n\n" + SENTENCE * 8
    sections = [(15, "Setup")]
    chunks = chunk_text(text, tokenizer, max_tokens=80, sections=sections, title="Guide")
    check(text, chunks, tokenizer, 80)
    assert chunks[-1].embed_text == f"Guide\nSetup\n{chunks[-1].text}"
    assert chunks[-1].section == "Setup" and chunks[-1].title == "Guide"
    same = chunk_text(
        text, tokenizer, max_tokens=80, sections=[(15, "Guide > Setup")], title="Guide"
    )
    assert same[-1].title == "" and same[-1].embed_text.startswith("Guide > Setup\n")


def test_a_huge_title_is_trimmed_like_a_heading_path(tokenizer) -> None:
    title = " ".join(f"word{n}" for n in range(100))
    text = "Body text. " * 50
    chunks = chunk_text(text, tokenizer, max_tokens=50, title=title)
    check(text, chunks, tokenizer, 50)
    assert title.startswith(chunks[0].title) and count(tokenizer, chunks[0].title) <= 25
