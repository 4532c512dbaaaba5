"""Extraction: every supported format, encodings, and refusals of bad or hostile files."""

from __future__ import annotations

import io
import json
import zipfile

import docx
import pytest
from pypdf import PdfWriter

from app.errors import Unprocessable, UnsupportedMediaType
from app.ingest.extract import extract


def make_pdf(*pages: str) -> bytes:
    """A minimal valid PDF with one line of Helvetica text on each page."""
    n = len(pages)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode() if text else b""
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * i)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    pdf = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(pdf)
    pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    pdf += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    pdf += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(pdf)


def make_docx() -> bytes:
    """A Word document with nested headings, body text and a table."""
    document = docx.Document()
    document.add_paragraph("Before any heading.")
    document.add_heading("Intro", level=1)
    document.add_paragraph("Welcome.")
    document.add_heading("Setup", level=2)
    document.add_paragraph("Install it.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "key", "value"
    document.add_heading("Usage", level=1)
    document.add_paragraph("Run it.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_zip(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name.replace("__", "/"), content)
    return buffer.getvalue()


def section_texts(doc) -> dict[str, str]:
    """Each section's heading path and its first line."""
    return {path: doc.text[offset:].split("\n")[0] for offset, path in doc.sections}


def test_text_file() -> None:
    [doc] = extract("C:\\Users\\me\\notes.TXT", b"Hello\r\nworld\x00!\n")
    assert (doc.title, doc.text, doc.source_type) == ("notes", "Hello\nworld!\n", "txt")
    assert (doc.sections, doc.metadata, doc.external_id) == ([], {}, None)


def test_cp1252_text_is_decoded() -> None:
    text = (
        "Le café était fermé, alors nous sommes allés à la crêperie près de l’église. "
        "C’était délicieux — vraiment!\nÀ bientôt, François."
    )
    assert extract("fr.txt", text.encode("cp1252"))[0].text == text


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32", "utf-8-sig"])
def test_unicode_encodings_are_decoded(encoding: str) -> None:
    text = "Héllo wörld ☃ Привет, a longer line of text to go on."
    assert extract("u.txt", text.encode(encoding))[0].text == text


def test_markdown_keeps_its_text_and_nests_headings() -> None:
    text = (
        "# Guide\n\nIntro.\n\n## Setup *fast*\n\n```sh\n# not a heading\n```\n\n"
        "### Linux\n\napt.\n\n## Usage\n\nRun.\n\nFAQ\n===\n\nNone.\n"
    )
    [doc] = extract("guide.markdown", text.encode())
    assert (doc.title, doc.text, doc.source_type) == ("Guide", text, "md")
    assert section_texts(doc) == {
        "Guide": "# Guide",
        "Guide > Setup *fast*": "## Setup *fast*",
        "Guide > Setup *fast* > Linux": "### Linux",
        "Guide > Usage": "## Usage",
        "FAQ": "FAQ",
    }


def test_markdown_without_headings_is_titled_by_file_name() -> None:
    [doc] = extract("plain.md", b"Just text.")
    assert (doc.title, doc.sections) == ("plain", [])


def test_html_visible_text_with_paragraphs_and_sections() -> None:
    page = """<!DOCTYPE html><html><head><title> My
      Page </title><style>p {color: red}</style><script>alert(1)</script></head>
      <body><noscript>Enable JS</noscript><template><p>hidden</p></template>
      <h1>Top <b>news</b></h1><p>First   paragraph
      wraps.<br>New line.</p><!-- a comment --><div>Inline <span>spans</span> stay</div>
      <table><tr><td>a</td><td>b</td></tr></table><pre>  code
    indented</pre><h2>Details</h2><ul><li>one</li><li>two</li></ul></body></html>"""
    [doc] = extract("page.HTM", page.encode())
    assert doc.title == "My Page" and doc.source_type == "html" and doc.titled
    assert doc.text == (
        "Top news\n\nFirst paragraph wraps.\nNew line.\n\nInline spans stay\n\na b\n\n"
        "  code\n    indented\n\nDetails\n\none\n\ntwo"
    )
    assert section_texts(doc) == {"Top news": "Top news", "Top news > Details": "Details"}


def test_html_title_falls_back_to_first_heading() -> None:
    [doc] = extract("x.html", b"<h2>Only <i>heading</i></h2><p>Body</p>")
    assert doc.title == "Only heading" and not doc.titled  # a heading is a section already


def test_only_a_records_own_title_is_read_with_its_chunks() -> None:
    data = b'{"title": "Otters", "text": "They hold hands."}\n{"text": "Untitled words."}\n'
    titled, untitled = extract("notes.jsonl", data)
    assert (titled.title, titled.titled) == ("Otters", True)
    assert (untitled.title, untitled.titled) == ("Untitled words.", False)
    assert not extract("notes.txt", b"Plain text.")[0].titled  # named after its file


def test_deeply_nested_html_is_read() -> None:
    page = "<div>" * 50_000 + "deep" + "</div>" * 50_000
    assert extract("deep.html", page.encode())[0].text == "deep"


def test_pdf_pages_become_paragraphs() -> None:
    [doc] = extract("paper.pdf", make_pdf("First page text.", "", "Third page."))
    assert (doc.title, doc.source_type, doc.metadata) == ("paper", "pdf", {"pages": 3})
    assert doc.text == "First page text.\n\nThird page."


def test_docx_headings_give_sections_and_tables_are_read() -> None:
    [doc] = extract("report.docx", make_docx())
    assert (doc.title, doc.source_type) == ("Intro", "docx")
    assert doc.text == (
        "Before any heading.\n\nIntro\n\nWelcome.\n\nSetup\n\nInstall it.\n\nkey\tvalue"
        "\n\nUsage\n\nRun it."
    )
    assert section_texts(doc) == {"Intro": "Intro", "Intro > Setup": "Setup", "Usage": "Usage"}


def test_jsonl_records_including_beir_style() -> None:
    lines = [
        {"_id": 4983, "title": "Brains", "text": "White matter.", "metadata": {}},
        {"text": "No title.", "external_id": "x-1", "metadata": {"lang": "en"}},
    ]
    data = "\n".join(json.dumps(line) for line in lines).encode() + b"\n\n"
    first, second = extract("corpus.jsonl", data)
    assert (first.title, first.text, first.external_id) == ("Brains", "White matter.", "4983")
    assert (second.title, second.external_id, second.metadata) == (
        "No title.",
        "x-1",
        {"lang": "en"},
    )
    assert first.source_type == second.source_type == "json"


@pytest.mark.parametrize(
    "payload",
    [{"title": "One", "text": "Only record."}, [{"title": "One", "text": "Only record."}]],
)
def test_json_object_or_array(payload: object) -> None:
    [doc] = extract("one.json", json.dumps(payload).encode())
    assert (doc.title, doc.text, doc.external_id) == ("One", "Only record.", None)


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.txt", b"", "is empty"),
        ("blank.md", b"  \n\n ", "No text found"),
        ("binary.txt", bytes(range(256)) * 8, "does not look like text"),
        ("fake.pdf", b"just some text, not a PDF", "not a readable PDF"),
        ("scan.pdf", make_pdf(""), "run OCR"),
        ("fake.docx", b"not a zip at all", "not a readable DOCX"),
        ("other.docx", make_zip(hello__txt=b"hi"), "not a readable DOCX"),
        ("bad.jsonl", b'{"text": "ok"}\n{"text": oops}\n', "bad.jsonl line 2 is not valid JSON"),
        ("bad.jsonl", b'{"text": "a"}\n{"text": "b"', "line 2 is not valid JSON: .* column 13"),
        ("bad.json", b'[{"text": "a"},\n', "bad.json is not valid JSON: .* line 2, column 1"),
        ("nul.json", b'{"text": "\\u0000"}', "record 1 has no 'text'"),
        ("notext.json", b'[{"text": "a"}, {"title": "b"}]', "record 2 has no 'text'"),
        ("list.jsonl", b'["text"]', "line 1 is not an object"),
        ("meta.json", b'{"text": "a", "metadata": [1]}', "'metadata' that is not a JSON object"),
        ("none.json", b"[]", "holds no records"),
        ("deep.json", b"[" * 100_000, "nests JSON too deeply"),
    ],
)
def test_unreadable_files_are_unprocessable(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(Unprocessable, match=reason):
        extract(name, data)


@pytest.mark.parametrize("name", ["archive.zip", "image.png", "README", "a.pdf.exe"])
def test_unknown_types_are_unsupported(name: str) -> None:
    with pytest.raises(UnsupportedMediaType, match=r"supported file types are .*\.docx"):
        extract(name, b"data")


def test_docx_zip_bomb_is_refused() -> None:
    bomb = make_zip(word__document_xml=b"<" + b"a" * 5_000_000)
    assert len(bomb) < 50_000
    with pytest.raises(Unprocessable, match="expands to 5,000,001 bytes"):
        extract("bomb.docx", bomb, max_expanded_bytes=1_000_000)


def test_pdf_page_limit() -> None:
    with pytest.raises(Unprocessable, match="has 3 pages, more than the limit of 2"):
        extract("long.pdf", make_pdf("a", "b", "c"), max_pdf_pages=2)


def test_password_protected_pdf_is_refused() -> None:
    writer = PdfWriter(clone_from=io.BytesIO(make_pdf("secret text")))
    writer.encrypt("secret", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(Unprocessable, match="password-protected"):
        extract("locked.pdf", buffer.getvalue())
