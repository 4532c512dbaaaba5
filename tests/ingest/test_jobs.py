"""Ingestion jobs: every document is accounted for, and a failing document fails alone."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from app.index.faiss import FaissFiles
from app.index.indexes import Indexes
from app.ingest.delete import delete_document
from app.ingest.extract import Extracted
from app.ingest.jobs import Ingestor
from app.ingest.sources import Source
from app.store.database import Store
from tests.support.fakes import FakeEmbedder, FakeEncoder

ENCODER = FakeEncoder()


class PickyEmbedder(FakeEmbedder):
    """Refuses any call that includes a text containing ``refuse``."""

    def __init__(self, refuse: str) -> None:
        super().__init__()
        self.refuse = refuse
        self.calls = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        if any(self.refuse in text for text in texts):
            raise RuntimeError("the embedder refused this text")
        return super().embed(texts)


def doc(text: str, title: str = "") -> Extracted:
    return Extracted(title=title or text[:20], text=text, source_type="text")


@pytest.fixture
def ingestor(store: Store) -> Iterator[Ingestor]:
    ingestor = Ingestor(
        store, Indexes(store, FaissFiles(None)), FakeEmbedder(), encoder=lambda: ENCODER
    )
    yield ingestor


def run(ingestor: Ingestor, sources: list[Source]) -> dict:
    job = ingestor.store.create_job("notes")
    finished = ingestor.run(job.id, "notes", sources)
    assert finished is not None and finished.state == "done", finished.error
    assert finished.result is not None
    return finished.result


def test_a_document_without_text_is_reported_failed(ingestor: Ingestor) -> None:
    blank = Source("blank.txt", [doc("\u200b\u200d \n\u200b", "blank")])
    fine = Source("fine.txt", [doc("Otters hold hands while they sleep.")])
    result = run(ingestor, [blank, fine])
    file = result["files"][0]
    assert (file["status"], file["added"], file["failed"]) == ("failed", 0, 1)
    assert "no text to index" in file["error"]
    assert result["files"][1]["status"] == "added"
    assert (result["added"], result["failed"]) == (1, 1)


def test_a_record_without_text_fails_alone_and_is_named(ingestor: Ingestor) -> None:
    records = Source("notes.jsonl", [doc("   ", "empty record"), doc("Herons fish at dawn.")])
    file = run(ingestor, [records])["files"][0]
    assert (file["status"], file["added"], file["failed"]) == ("added", 1, 1)
    assert file["error"].startswith("'empty record': no text to index")


def test_a_document_the_embedder_refuses_fails_alone(store: Store) -> None:
    embedder = PickyEmbedder(refuse="poison")
    ingestor = Ingestor(store, Indexes(store, FaissFiles(None)), embedder, encoder=lambda: ENCODER)
    sources = [Source(f"{name}.txt", [doc(f"{name} is a word about {name}.")]) for name in "abc"]
    sources.insert(1, Source("bad.txt", [doc("This one holds poison.")]))
    result = run(ingestor, sources)
    assert [f["status"] for f in result["files"]] == ["added", "failed", "added", "added"]
    assert "RuntimeError: the embedder refused this text" in result["files"][1]["error"]
    assert embedder.calls == 1 + len(sources)  # the group once, then each document alone
    assert store.list_documents()[1] == 3


def test_a_document_the_store_refuses_fails_alone(
    ingestor: Ingestor, monkeypatch: pytest.MonkeyPatch
) -> None:
    add = Store.add_document

    def picky_add(self: Store, collection_id: int, fields: dict, *args: object) -> object:
        if "poison" in fields["text"]:
            raise OSError("disk says no")
        return add(self, collection_id, fields, *args)

    monkeypatch.setattr(Store, "add_document", picky_add)
    sources = [Source("bad.txt", [doc("poison here")]), Source("ok.txt", [doc("fine here")])]
    result = run(ingestor, sources)
    assert [f["status"] for f in result["files"]] == ["failed", "added"]
    assert result["files"][0]["error"] == "OSError: disk says no"


def test_many_failures_are_counted_not_all_listed(ingestor: Ingestor) -> None:
    records = Source("empty.jsonl", [doc(" " * (i + 1), f"record {i}") for i in range(8)])
    file = run(ingestor, [records])["files"][0]
    assert file["failed"] == 8
    assert file["error"].count("no text to index") == 5
    assert file["error"].endswith("and 3 more documents failed")


def test_chunks_larger_than_the_model_window_fail_the_job_with_the_fix(store: Store) -> None:
    ingestor = Ingestor(
        store,
        Indexes(store, FaissFiles(None)),
        FakeEmbedder(),
        encoder=lambda: ENCODER,
        chunk_tokens=300,
    )
    job = store.create_job("notes")
    failed = ingestor.run(job.id, "notes", [Source("a.txt", [doc("Some text.")])])
    assert failed.state == "failed"
    assert failed is not None
    assert "EMBEDSEARCH_CHUNK_TOKENS to 254 or less" in (failed.error or "")


def test_deleting_a_document_never_reads_its_text(
    ingestor: Ingestor, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(ingestor, [Source("a.txt", [doc("A long text. " * 500)])])
    reads: list[bool] = []
    get = Store.get_document

    def spy(self: Store, document_id: int, *, with_text: bool = True) -> object:
        reads.append(with_text)
        return get(self, document_id, with_text=with_text)

    monkeypatch.setattr(Store, "get_document", spy)
    delete_document(ingestor.store, ingestor.indexes, result["files"][0]["documents"][0])
    assert reads and not any(reads)
    assert ingestor.store.list_documents()[1] == 0


class RecordingEmbedder(FakeEmbedder):
    """Keeps every text it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.texts += texts
        return super().embed(texts)


def test_a_documents_own_title_is_embedded_with_its_later_chunks(store: Store) -> None:
    embedder = RecordingEmbedder()
    indexes = Indexes(store, FaissFiles(None))
    ingestor = Ingestor(
        store, indexes, embedder, encoder=lambda: ENCODER, chunk_tokens=40, chunk_overlap=8
    )
    body = "Otters hold hands while they sleep. " * 12
    titled = Extracted(
        title="Sea otters", text=f"Sea otters {body}", source_type="json", titled=True
    )
    named = Extracted(title="notes", text=body, source_type="txt")
    run(ingestor, [Source("a.jsonl", [titled]), Source("notes.txt", [named])])
    stored = [c.text for d in store.list_documents(1, limit=10)[0] for c in store.get_chunks(d.id)]
    later = [text for text in embedder.texts if not text.startswith("Sea otters Otters")]
    assert len(stored) == len(embedder.texts) > 4
    # The stored chunks are the text as written; the model read the title above the later ones.
    assert all(not text.startswith("Sea otters\n") for text in stored)
    assert sum(text.startswith("Sea otters\n") for text in later) >= 2
    assert not any(text.startswith("notes\n") for text in embedder.texts)
