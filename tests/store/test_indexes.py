"""Indexes: per-collection indexes kept in step with SQLite, checked and repaired from it."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest

from app.index.faiss import FaissFiles, FaissIndex
from app.index.indexes import Indexes
from app.store.database import Store
from app.store.records import AddResult, ChunkRecord, Collection
from tests.support.documents import DIMENSIONS, AddDoc, unit_vectors

Indexed = tuple[Indexes, list[AddResult]]


def ingest(indexes: Indexes, collection_id: int, result: AddResult) -> None:
    """What the ingest layer does after a commit: update the index from SQLite, then save."""
    ids, vectors = indexes.store.chunk_vectors(collection_id, result.chunk_ids)
    indexes.remove(collection_id, np.array(result.removed_ids, dtype=np.int64))
    indexes.add(collection_id, ids, vectors)
    indexes.save(collection_id)


def assert_matches_store(indexes: Indexes, collection_id: int) -> None:
    """Every stored vector is in the index, under its own chunk id, and nothing else is."""
    ids, vectors = indexes.store.chunk_vectors(collection_id)
    scores, found = indexes.search(collection_id, vectors, 1)
    np.testing.assert_array_equal(found[:, 0], ids)
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    assert indexes.check(collection_id).ok


@pytest.fixture
def indexed(store: Store, collection: Collection, add_doc: AddDoc, tmp_path: Path) -> Indexed:
    """An on-disk index over three saved documents."""
    indexes = Indexes(store, FaissFiles(tmp_path / "indexes"))
    results = [add_doc([f"doc {n} chunk {i}" for i in range(4)]) for n in range(3)]
    for result in results:
        ingest(indexes, collection.id, result)
    return indexes, results


def test_a_new_collection_is_indexed_quietly(
    store: Store,
    collection: Collection,
    add_doc: AddDoc,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    indexes = Indexes(store, FaissFiles(tmp_path))
    with caplog.at_level(logging.WARNING, logger="embedsearch.index"):
        ingest(indexes, collection.id, add_doc(["first", "document"]))
    assert caplog.records == []  # no file yet is normal for a new collection, not a loss
    assert_matches_store(indexes, collection.id)


def test_ingested_index_matches_the_store(indexed: Indexed, collection: Collection) -> None:
    indexes, _ = indexed
    report = indexes.check(collection.id)
    assert (report.ok, report.state, report.missing, report.extra) == (True, "ok", 0, 0)
    assert report.index_version == report.store_version == 3
    assert_matches_store(indexes, collection.id)


def test_replace_and_delete_keep_the_index_in_step(
    indexed: Indexed, store: Store, collection: Collection, add_doc: AddDoc
) -> None:
    indexes, results = indexed
    replaced = add_doc(["new text"], replace_id=results[0].document_id)
    ingest(indexes, collection.id, replaced)
    indexes.remove(collection.id, np.array(store.delete_document(results[1].document_id)))
    indexes.save(collection.id)
    assert len(store.chunk_ids(collection.id)) == 5
    assert_matches_store(indexes, collection.id)


def test_a_fresh_instance_loads_the_saved_file(
    indexed: Indexed, store: Store, collection: Collection
) -> None:
    indexes, _ = indexed
    restarted = Indexes(store, indexes.backend)
    report = restarted.check(collection.id)
    assert (report.ok, report.state) == (True, "ok")
    assert restarted.repair(collection.id).action == "none"
    assert_matches_store(restarted, collection.id)


def damage(kind: str, path: Path, store: Store, add_doc: AddDoc, results: list[AddResult]) -> None:
    """Break the saved index (or SQLite's agreement with it) in one of several ways."""
    if kind == "deleted":
        path.unlink()
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif kind == "garbage":
        path.write_bytes(b"garbage" * 1000)
    elif kind == "stale":
        add_doc(["committed", "but never indexed"])  # a crash before the index update
    elif kind == "extra":
        store.delete_document(results[0].document_id)  # a crash before the index update
    elif kind == "foreign":
        index = FaissIndex(DIMENSIONS, version=3)
        index.add(np.array([10**6, 10**6 + 1]), np.eye(2, DIMENSIONS))
        index.save(path)  # e.g. a file restored from another installation


EXPECTED = {  # kind: (file, missing, extra, action)
    "deleted": ("missing", 12, 0, "rebuilt"),
    "truncated": ("unreadable", 12, 0, "rebuilt"),
    "garbage": ("unreadable", 12, 0, "rebuilt"),
    "stale": ("ok", 2, 0, "updated"),
    "extra": ("ok", 0, 4, "updated"),
    "foreign": ("ok", 12, 2, "updated"),
}


@pytest.mark.parametrize("kind", EXPECTED)
def test_check_reports_and_repair_fixes_from_stored_vectors(
    indexed: Indexed, store: Store, collection: Collection, add_doc: AddDoc, kind: str
) -> None:
    indexes, results = indexed
    damage(kind, indexes.backend.path(collection.id), store, add_doc, results)

    restarted = Indexes(store, indexes.backend)
    report = restarted.check(collection.id)
    assert not report.ok
    assert (report.state, report.missing, report.extra) == EXPECTED[kind][:3]
    assert restarted.check(collection.id) == report  # check changes nothing

    repaired = restarted.repair(collection.id)
    assert repaired.action == EXPECTED[kind][3]
    assert_matches_store(restarted, collection.id)
    # The repair was saved: yet another restart finds a good file.
    again = Indexes(store, indexes.backend).check(collection.id)
    assert (again.ok, again.index_version) == (True, store.get_collection("notes").version)


def test_a_stale_version_alone_is_repaired_by_saving(
    indexed: Indexed, store: Store, collection: Collection
) -> None:
    indexes, _ = indexed
    # e.g. a crash after the index file was written but before its sidecar
    with store._transaction() as conn:
        conn.execute("UPDATE collections SET version = version + 1")
    restarted = Indexes(store, indexes.backend)
    report = restarted.check(collection.id)
    assert (report.ok, report.index_version, report.store_version) == (False, 3, 4)
    assert restarted.repair(collection.id).action == "updated"
    assert Indexes(store, indexes.backend).check(collection.id).ok


def test_rebuilding_a_lost_file_logs_a_warning(
    indexed: Indexed, store: Store, collection: Collection, caplog: pytest.LogCaptureFixture
) -> None:
    indexes, _ = indexed
    indexes.backend.path(collection.id).write_bytes(b"junk")
    with caplog.at_level(logging.WARNING, logger="embedsearch.index"):
        reports = Indexes(store, indexes.backend).sync_all()
    assert [(r.collection_id, r.action) for r in reports] == [(collection.id, "rebuilt")]
    assert "unreadable; rebuilt 12 vectors" in caplog.text


def test_first_use_repairs_lazily(indexed: Indexed, store: Store, collection: Collection) -> None:
    indexes, _ = indexed
    indexes.backend.path(collection.id).unlink()
    restarted = Indexes(store, indexes.backend)
    ids, vectors = store.chunk_vectors(collection.id)
    assert restarted.search(collection.id, vectors[:3], 1)[1][:, 0].tolist() == ids[:3].tolist()
    assert indexes.backend.path(collection.id).exists()


def test_rebuild_replaces_whatever_is_loaded(indexed: Indexed, collection: Collection) -> None:
    indexes, _ = indexed
    indexes.add(collection.id, np.array([999_999]), np.ones((1, DIMENSIONS)))
    assert indexes.check(collection.id).extra == 1
    report = indexes.rebuild(collection.id)
    assert (report.action, report.extra) == ("rebuilt", 1)
    assert_matches_store(indexes, collection.id)


def test_collections_have_separate_indexes_and_dimensions(
    store: Store, collection: Collection, add_doc: AddDoc, rng: np.random.Generator
) -> None:
    small = store.ensure_collection("small", "tiny-model", 4, "faiss")
    fields = {"title": "t", "source_name": "s", "source_type": "text/plain", "size": 1}
    fields |= {"content_hash": "h", "text": "x"}
    store.add_document(small.id, fields, [ChunkRecord(0, "x", 0, 1, 1)], unit_vectors(rng, 1, 4))
    add_doc(["big one", "big two"])
    indexes = Indexes(store, FaissFiles(None))  # in memory: built from SQLite on first use

    assert [r.action for r in indexes.sync_all()] == ["rebuilt", "rebuilt"]
    assert (indexes.search(small.id, np.ones(4), 5)[1] >= 0).sum() == 1
    assert_matches_store(indexes, collection.id)
    assert_matches_store(indexes, small.id)


def test_searches_and_writes_go_on_while_a_save_writes(
    indexed: Indexed, collection: Collection, add_doc: AddDoc, monkeypatch: pytest.MonkeyPatch
) -> None:
    indexes, _ = indexed
    writing, release = threading.Event(), threading.Event()
    write = FaissIndex.save

    def slow_save(index: FaissIndex, path: Path) -> None:
        writing.set()
        assert release.wait(10)
        write(index, path)

    monkeypatch.setattr(FaissIndex, "save", slow_save)
    saving = threading.Thread(target=indexes.save, args=(collection.id,))
    saving.start()
    assert writing.wait(10)
    # The save holds a copy: the index answers and changes while the file is written.
    ids, vectors = indexes.store.chunk_vectors(collection.id)
    assert indexes.search(collection.id, vectors[:1], 1)[1][0, 0] == ids[0]
    later = add_doc(["written during the save"])
    indexes.add(collection.id, *indexes.store.chunk_vectors(collection.id, later.chunk_ids))
    assert saving.is_alive()  # both went through while the save was still writing
    release.set()
    saving.join(10)
    saved = Indexes(indexes.store, indexes.backend)
    # What was saved is the copy: one chunk behind, which the next load catches up on.
    assert saved.check(collection.id).missing == 1
    indexes.save(collection.id)
    assert Indexes(indexes.store, indexes.backend).check(collection.id).ok
