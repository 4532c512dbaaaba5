"""Turn an uploaded file into documents: plain text, heading sections and metadata."""

from __future__ import annotations

import contextlib
import io
import json
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PureWindowsPath
from typing import Any

import docx
from bs4 import BeautifulSoup, NavigableString, PageElement, Tag
from bs4.element import PreformattedString
from charset_normalizer import from_bytes
from docx.document import Document as DocxDocument
from docx.table import Table
from markdown_it import MarkdownIt
from pypdf import PdfReader

from app.errors import AppError, BadRequest, Unprocessable, UnsupportedMediaType
from app.jsonvalues import depth, has_lone_surrogate
from app.settings import Settings

_TYPES = {
    ".txt": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
    ".json": "json",
    ".jsonl": "json",
}
FILE_TYPES = tuple(_TYPES)  # the file name endings read, for clients walking a folder
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
# Elements that start a new paragraph; everything else flows inline.
# fmt: off
_BLOCKS = {
    *_HEADINGS, "address", "article", "aside", "blockquote", "dd", "details", "dialog", "div",
    "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hr", "li",
    "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tr", "ul",
}
# fmt: on
_DOCX_HEADING = re.compile(r"Heading ([1-9])")


@dataclass
class Extracted:
    """One document: its text, the heading sections in it, and where it came from."""

    title: str
    text: str
    source_type: str
    sections: list[tuple[int, str]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    external_id: str | None = None
    # The title is the document's own (a record's "title", a page's <title>), not one made up
    # from its file name or first words: the model reads it with every chunk (chunk_text).
    titled: bool = False


def extract(
    filename: str,
    data: bytes,
    *,
    max_expanded_bytes: int = 200_000_000,
    max_pdf_pages: int = 2000,
) -> list[Extracted]:
    """The documents in an uploaded file: one, or one per record of a JSON or JSON Lines file."""
    # The name is only a label, never a path we open; PureWindowsPath splits on / and \ alike.
    name = PureWindowsPath(filename)
    label, stem, suffix = name.name, name.stem, name.suffix.lower()
    if suffix not in _TYPES:
        raise UnsupportedMediaType(
            f"Cannot index {label!r}: supported file types are {', '.join(_TYPES)}."
        )
    if not data:
        raise Unprocessable(f"{label} is empty: upload a file with some text in it.")
    kind = _TYPES[suffix]
    if kind == "json":
        return _records(_decode(data, label), label, lines=suffix == ".jsonl")
    if kind == "pdf":
        document = _pdf(data, label, stem, max_pdf_pages)
    elif kind == "docx":
        document = _docx(data, label, stem, max_expanded_bytes)
    elif kind == "html":
        document = _html(_decode(data, label), stem)
    elif kind == "md":
        document = _markdown(_decode(data, label), stem)
    else:
        document = Extracted(title=stem, text=_decode(data, label), source_type="txt")
    if not document.text.strip():
        hint = "if it is a scan, run OCR on it first" if kind == "pdf" else "add some text first"
        raise Unprocessable(f"No text found in {label}: {hint}.")
    return [document]


def _decode(data: bytes, label: str) -> str:
    """Text from bytes in whatever encoding they use, with NULs and CR line ends removed."""
    # Valid UTF-8 is almost never anything else; NUL bytes mean UTF-16 or UTF-32 instead.
    if b"\x00" not in data:
        with contextlib.suppress(UnicodeDecodeError):
            return _clean(data.decode("utf-8-sig"))
    matches = from_bytes(data)
    if (best := matches.best()) is None:
        raise Unprocessable(
            f"{label} does not look like text in any encoding: save it as UTF-8 and upload again."
        )
    # Single-byte code pages often decode a text equally well; like browsers, default to
    # Windows-1252 then, rather than to whichever Central European page sorts first.
    western = (m for m in matches if m.encoding == "cp1252" and m.chaos == best.chaos)
    return _clean(str(next(western, best)))


def _clean(text: str) -> str:
    """Text without NUL characters and with ``\\n`` line ends only."""
    return re.sub(r"\r\n?", "\n", text.replace("\x00", ""))


def _sections(headings: Iterable[tuple[int, int, str]]) -> list[tuple[int, str]]:
    """``(offset, "Intro > Setup")`` for each ``(offset, level, title)`` heading, in order."""
    open_headings: list[tuple[int, str]] = []
    sections = []
    for offset, level, title in headings:
        if title := " ".join(title.split()):
            while open_headings and open_headings[-1][0] >= level:
                open_headings.pop()
            open_headings.append((level, title))
            sections.append((offset, " > ".join(title for _, title in open_headings)))
    return sections


def _join(blocks: Iterable[tuple[str, int | None]]) -> tuple[str, list[tuple[int, str]]]:
    """Paragraphs ``(text, heading level or None)`` joined by blank lines, and their sections."""
    paragraphs: list[str] = []
    headings = []
    offset = 0
    for paragraph, level in blocks:
        if paragraph.strip():
            if level:
                headings.append((offset, level, paragraph))
            paragraphs.append(paragraph)
            offset += len(paragraph) + 2
    return "\n\n".join(paragraphs), _sections(headings)


def _markdown(text: str, stem: str) -> Extracted:
    """Markdown kept as written, with ATX and setext headings as sections."""
    line_starts = [0, *(m.end() for m in re.finditer("\n", text))]
    tokens = MarkdownIt("commonmark").parse(text)
    headings = [
        (line_starts[opening.map[0]], int(opening.tag[1]), inline.content)
        for opening, inline in zip(tokens, tokens[1:], strict=False)
        if opening.type == "heading_open" and opening.map
    ]
    sections = _sections(headings)
    title = sections[0][1] if sections else stem
    return Extracted(title=title, text=text, source_type="md", sections=sections)


def _html(text: str, stem: str) -> Extracted:
    """The visible text of a page, a blank line between blocks, h1-h6 as sections."""
    soup = BeautifulSoup(text, "lxml")
    for hidden in soup(["script", "style", "noscript", "template"]):
        hidden.decompose()
    body, sections = _join(_html_blocks(soup.body or soup))
    title = " ".join(soup.title.get_text().split()) if soup.title else ""
    titled = bool(title)
    title = title or (sections[0][1] if sections else stem)
    return Extracted(title=title, text=body, source_type="html", sections=sections, titled=titled)


def _html_blocks(root: PageElement) -> Iterator[tuple[str, int | None]]:
    """Paragraphs of an HTML tree with their heading level, walked without recursion."""
    # A hostile page can nest elements far deeper than Python's recursion limit.
    pieces: list[str] = []
    todo: list[tuple[PageElement | None, int | None, bool]] = [(root, None, False)]
    while todo:
        node, level, pre = todo.pop()
        if node is None:  # the end of a block
            yield _paragraph(pieces, pre), level
            pieces.clear()
        elif isinstance(node, NavigableString):
            if not isinstance(node, PreformattedString):  # comments, doctypes, CDATA
                pieces.append(node if pre else re.sub(r"\s+", " ", node))
        elif not isinstance(node, Tag):
            continue  # neither text nor an element: nothing to read
        elif node.name == "br":
            pieces.append("\n")
        else:
            if node.name in _BLOCKS:
                yield _paragraph(pieces, pre), None
                pieces.clear()
                pre = pre or node.name == "pre"
                todo.append((None, _HEADINGS.get(node.name), pre))
            elif node.name in ("td", "th"):
                pieces.append(" ")
            todo.extend((child, None, pre) for child in reversed(node.contents))
    yield _paragraph(pieces, False), None


def _paragraph(pieces: list[str], pre: bool) -> str:
    """One paragraph from its text pieces; inside <pre> whitespace is kept as written."""
    text = "".join(pieces)
    return text.strip("\n") if pre else re.sub(r" *\n *", "\n", text).strip()


@contextlib.contextmanager
def _parsing(label: str, kind: str) -> Iterator[None]:
    """Report any failure of a parser on a damaged file as Unprocessable."""
    try:
        yield
    except AppError:
        raise
    except Exception as exc:  # damaged files fail deep inside parsers, in every way there is
        raise Unprocessable(
            f"{label} is not a readable {kind} file ({exc}): check that it opens, "
            "or save it again and upload the new copy."
        ) from exc


def _pdf(data: bytes, label: str, stem: str, max_pages: int) -> Extracted:
    """The text layer of a PDF, a blank line between pages."""
    with _parsing(label, "PDF"):
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise Unprocessable(f"{label} is password-protected: remove the password and retry.")
        if (pages := len(reader.pages)) > max_pages:
            raise Unprocessable(
                f"{label} has {pages} pages, more than the limit of {max_pages}: split it first."
            )
        texts = [page.extract_text().strip() for page in reader.pages]
    text = "\n\n".join(text for text in texts if text)
    return Extracted(title=stem, text=text, source_type="pdf", metadata={"pages": pages})


def _docx(data: bytes, label: str, stem: str, max_expanded_bytes: int) -> Extracted:
    """The paragraphs and tables of a Word document, "Heading N" paragraphs as sections."""
    with _parsing(label, "DOCX"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            # zipfile never inflates a member past its declared size (the CRC check fails
            # instead), so the declared sizes bound the memory a zip bomb can take.
            expanded = sum(member.file_size for member in archive.infolist())
        if expanded > max_expanded_bytes:
            raise Unprocessable(
                f"{label} expands to {expanded:,} bytes, more than the limit of "
                f"{max_expanded_bytes:,}: split the document or remove large embedded files."
            )
        document = docx.Document(io.BytesIO(data))
        text, sections = _join(_docx_blocks(document))
    title = sections[0][1] if sections else stem
    return Extracted(title=title, text=text, source_type="docx", sections=sections)


def _docx_blocks(document: DocxDocument) -> Iterator[tuple[str, int | None]]:
    """Paragraphs with their heading level, and table rows as tab-separated cells, in order."""
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                yield "\t".join(cell.text for cell in row.cells), None
        else:
            heading = _DOCX_HEADING.fullmatch(block.style.name if block.style else "")
            yield block.text, int(heading[1]) if heading else None


def _records(text: str, label: str, *, lines: bool) -> list[Extracted]:
    """One document per record of a JSON Lines file, or of a JSON object or array."""
    if lines:
        parsed = [
            (f"{label} line {number}", _loads(line, f"{label} line {number}"))
            for number, line in enumerate(text.split("\n"), 1)
            if line.strip()
        ]
    else:
        records = _loads(text, label)
        records = records if isinstance(records, list) else [records]
        parsed = [(f"{label} record {number}", r) for number, r in enumerate(records, 1)]
    if not parsed:
        raise Unprocessable(f"{label} holds no records: add objects with a 'text' field.")
    return [json_record(record, where) for where, record in parsed]


def _loads(text: str, where: str) -> Any:
    """Parsed JSON, or Unprocessable saying where it breaks."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        line = f"line {exc.lineno}, " if exc.lineno > 1 else ""
        raise Unprocessable(
            f"{where} is not valid JSON: {exc.msg} at {line}column {exc.colno}."
        ) from exc
    except RecursionError as exc:
        raise Unprocessable(f"{where} nests JSON too deeply to read.") from exc


def json_record(record: Any, where: str) -> Extracted:
    """A document from one JSON record: ``text``, optional ``title``, ``metadata`` and an id.

    Without a title it is titled by the start of its text (up to 60 characters of the first line).
    """
    if not isinstance(record, dict):
        raise Unprocessable(f'{where} is not an object like {{"title": ..., "text": ...}}.')
    if has_lone_surrogate(record):
        raise Unprocessable(
            f"{where} holds a lone surrogate escape (like \\ud800), which is not text: "
            "send valid Unicode."
        )
    text = record.get("text")
    if not isinstance(text, str) or not (text := _clean(text)).strip():
        raise Unprocessable(f"{where} has no 'text': every record needs a non-empty text string.")
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise Unprocessable(f"{where} has a 'metadata' that is not a JSON object.")
    # BEIR corpora name the id "_id".
    external_id = record.get("external_id", record.get("_id"))
    title = _clean(str(record.get("title") or "")).strip()
    return Extracted(
        title=title or text.strip()[:60].split("\n")[0],
        text=text,
        source_type="json",
        metadata=metadata,
        external_id=None if external_id is None else str(external_id),
        titled=bool(title),
    )


@dataclass(frozen=True)
class RecordLimits:
    """What one document may carry besides its text: metadata depth and size, title length."""

    metadata_depth: int
    metadata_bytes: int
    title_chars: int

    @classmethod
    def of(cls, settings: Settings) -> RecordLimits:
        """The limits these settings set."""
        return cls(
            settings.max_metadata_depth, settings.max_metadata_bytes, settings.max_title_chars
        )

    def check(self, document: Extracted, where: str) -> None:
        """BadRequest naming the setting if ``document`` is over a limit."""
        if (levels := depth(document.metadata)) > self.metadata_depth:
            raise BadRequest(
                f"{where} has metadata nested {levels} levels deep, more than the limit of "
                f"{self.metadata_depth} (EMBEDSEARCH_MAX_METADATA_DEPTH): flatten it.",
                param="metadata",
            )
        size = len(json.dumps(document.metadata, ensure_ascii=False).encode())
        if size > self.metadata_bytes:
            raise BadRequest(
                f"{where} has {size:,} bytes of metadata, more than the limit of "
                f"{self.metadata_bytes:,} (EMBEDSEARCH_MAX_METADATA_BYTES): put long values in "
                "the text instead.",
                param="metadata",
            )
        if len(document.title) > self.title_chars:
            raise BadRequest(
                f"{where} has a title of {len(document.title):,} characters, more than the limit "
                f"of {self.title_chars:,} (EMBEDSEARCH_MAX_TITLE_CHARS).",
                param="title",
            )
