"""The store on SQLite and PostgreSQL: schema, transactional writes, lookups, keyword search."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.errors import BadRequest, Conflict, NotFound
from app.store.database import Store
from app.store.keywords import COMMON_MIN, fts_words
from app.store.migrations import MIGRATIONS, migrate, schema_version
from app.store.records import ChunkRecord, Collection
from app.store.sqlite import fts_table
from tests.support.documents import DIMENSIONS, AddDoc, chunk_records, unit_vectors


def count(store: Store, table: str) -> int:
    return store._tuples(f"SELECT count(*) FROM {table}")[0][0]


def counts(store: Store) -> tuple[int, ...]:
    """Rows in documents, chunks and the full-text index (SQLite: one size row per chunk in
    the collections' FTS tables; PostgreSQL: chunks with a tsvector)."""
    if store.dialect.name == "postgresql":
        indexed = count(store, "chunks WHERE tsv IS NOT NULL")
    else:
        indexed = sum(count(store, f"{fts_table(c.id)}_docsize") for c in store.list_collections())
    return count(store, "documents"), count(store, "chunks"), indexed


def sqlite_only(store: Store, why: str) -> None:
    if store.dialect.name != "sqlite":
        pytest.skip(f"SQLite only: {why}")


def test_schema_has_tables_fts_and_lookup_indexes(store: Store, collection: Collection) -> None:
    sqlite_only(store, "reads SQLite's catalogue (PostgreSQL's is checked below)")
    assert {"collections", "documents", "chunks", "jobs", fts_table(collection.id)} <= set(
        store.db.table_names()
    )
    assert {
        ("collection_id", "content_hash"),
        ("collection_id", "external_id"),
        ("collection_id", "source_name"),
    } <= {tuple(index.columns) for index in store.db["documents"].indexes}
    assert {"text", "section", "start", "end", "vector"} <= set(store.db["chunks"].columns_dict)


def test_postgres_schema_has_tsvector_with_a_gin_index(store: Store) -> None:
    if store.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    indexes = store._tuples("SELECT indexdef FROM pg_indexes WHERE tablename = 'chunks'")
    assert any("USING gin (tsv)" in row[0] for row in indexes)


def test_migrations_run_once_and_are_recorded(store: Store) -> None:
    recorded = store._tuples("SELECT version FROM schema_migrations ORDER BY version")
    assert [row[0] for row in recorded] == [m.version for m in MIGRATIONS]
    assert migrate(store.dialect) == []  # a second start-up finds nothing to do
    assert schema_version(store.dialect) == MIGRATIONS[-1].version


def test_on_disk_store_uses_wal_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = Store(path)
    collection = store.ensure_collection("docs", "m", 4, "faiss")
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    store.close()
    reopened = Store(path)  # creating the schema again must be a no-op
    assert reopened.get_collection("docs").id == collection.id
    reopened.close()


def test_on_disk_reads_never_wait_for_the_writer(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.db")
    store.ensure_collection("docs", "m", 4, "faiss")
    writing, done = threading.Event(), threading.Event()

    def write() -> None:
        with store._transaction() as conn:
            conn.execute("UPDATE collections SET name = 'renamed'")
            # Inside its own transaction a thread reads what it has not committed yet.
            assert store._tuples("SELECT name FROM collections") == [("renamed",)]
            writing.set()
            done.wait(10)

    writer = threading.Thread(target=write)
    writer.start()
    assert writing.wait(10)
    try:
        # Another thread reads the last commit at once, while the transaction stays open.
        assert store._tuples("SELECT name FROM collections") == [("docs",)]
    finally:
        done.set()
        writer.join()
    assert store._tuples("SELECT name FROM collections") == [("renamed",)]
    with pytest.raises(sqlite3.OperationalError, match="readonly"), store.dialect.read() as conn:
        conn.execute("DELETE FROM collections")  # a reader can never be a second writer
    store.close()


def test_on_disk_readers_are_pooled_up_to_the_pool_size(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.db", pool_size=2)
    held, release = threading.Barrier(3), threading.Event()
    opened: list[int] = []

    def hold() -> None:
        with store.dialect.read() as conn:
            opened.append(id(conn))
            held.wait(10)
            release.wait(10)

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for thread in threads:
        thread.start()
    held.wait(10)
    third = threading.Thread(target=store.ping)
    third.start()
    third.join(0.3)
    assert third.is_alive()  # both readers are taken: the third read waits for one
    release.set()
    third.join(10)
    for thread in threads:
        thread.join()
    assert len(set(opened)) == 2
    assert len(store.dialect._idle) == 2  # type: ignore[attr-defined]  # reused, not reopened
    store.close()


def test_ensure_collection_creates_once(store: Store, collection: Collection) -> None:
    again = store.ensure_collection("notes", "test-model", DIMENSIONS, "faiss")
    assert again.id == collection.id
    assert [c.name for c in store.list_collections()] == ["notes"]


@pytest.mark.parametrize(("model", "dimensions"), [("other-model", DIMENSIONS), ("test-model", 8)])
def test_ensure_collection_refuses_another_model(
    store: Store, collection: Collection, model: str, dimensions: int
) -> None:
    with pytest.raises(Conflict, match="never mixes models.*another collection name"):
        store.ensure_collection("notes", model, dimensions, "faiss")


def test_get_collection_not_found_says_what_to_do(store: Store) -> None:
    with pytest.raises(NotFound, match="No collection named 'missing'. Ingest"):
        store.get_collection("missing")


def test_list_collections_counts_documents_and_chunks(store: Store, add_doc: AddDoc) -> None:
    other = store.ensure_collection("other", "test-model", DIMENSIONS, "faiss")
    add_doc(["a", "b", "c"])
    add_doc(["d", "e"])
    add_doc(["f"], collection_id=other.id)
    assert [(c.name, c.documents, c.chunks) for c in store.list_collections()] == [
        ("notes", 2, 5),
        ("other", 1, 1),
    ]


def count_from_documents(store: Store) -> list[tuple[str, int, int]]:
    rows = store._tuples(
        "SELECT c.name, count(d.id), coalesce(sum(d.chunk_count), 0) FROM collections c "
        "LEFT JOIN documents d ON d.collection_id = c.id GROUP BY c.name ORDER BY c.name"
    )
    return [(name, int(documents), int(chunks)) for name, documents, chunks in rows]


def test_counts_stay_true_through_replacing_and_deleting(
    store: Store, collection: Collection, add_doc: AddDoc
) -> None:
    other = store.ensure_collection("other", "test-model", DIMENSIONS, "faiss")
    a = add_doc(["a", "b", "c"])
    b = add_doc(["d", "e"], external_id="e-1")
    c = add_doc(["f"], collection_id=other.id)
    add_doc(["g", "h", "i", "j"], replace_id=a.document_id)  # 3 chunks -> 4
    add_doc(["k"], external_id="e-1")  # replaces b by its external id: 2 chunks -> 1
    assert [(c.name, c.documents, c.chunks) for c in store.list_collections()] == [
        ("notes", 2, 5),
        ("other", 1, 1),
    ]
    store.delete_document(b.document_id)
    store.delete_documents([a.document_id, c.document_id, 999])
    shown = [(c.name, c.documents, c.chunks) for c in store.list_collections()]
    assert shown == count_from_documents(store) == [("notes", 0, 0), ("other", 0, 0)]


def test_the_counts_migration_counts_what_a_database_holds(
    store: Store, collection: Collection, add_doc: AddDoc
) -> None:
    add_doc(["a", "b", "c"])
    add_doc(["d", "e"])
    with store.dialect.transaction() as conn:  # back to the schema before migration 4
        for column in ("documents", "chunks"):
            conn.execute(f"ALTER TABLE collections DROP COLUMN {column}")
        conn.execute("DELETE FROM schema_migrations WHERE version = 4")
    assert migrate(store.dialect) == [4]
    assert [(c.name, c.documents, c.chunks) for c in store.list_collections()] == [("notes", 2, 5)]


def test_add_document_stores_fields_chunks_and_exact_vectors(
    store: Store, collection: Collection
) -> None:
    vectors = np.random.default_rng(7).normal(size=(2, DIMENSIONS)).astype(np.float32)
    chunks = [ChunkRecord(0, "alpha", 0, 5, 1, "Intro"), ChunkRecord(1, "beta", 6, 10, 1)]
    fields = {
        "title": "Greek",
        "source_name": "greek.txt",
        "source_type": "text/plain",
        "size": 10,
        "content_hash": "abc",
        "external_id": "ext-1",
        "metadata": {"lang": "el"},
        "text": "alpha beta",
    }
    result = store.add_document(collection.id, fields, chunks, vectors)

    document = store.get_document(result.document_id)
    assert (document.title, document.text, document.metadata) == (
        "Greek",
        "alpha beta",
        {"lang": "el"},
    )
    assert document.chunk_count == 2
    stored = store.get_chunks(result.document_id)
    assert [(c.id, c.seq, c.text, c.section, c.start, c.end) for c in stored] == [
        (result.chunk_ids[0], 0, "alpha", "Intro", 0, 5),
        (result.chunk_ids[1], 1, "beta", None, 6, 10),
    ]
    ids, matrix = store.chunk_vectors(collection.id)
    assert ids.tolist() == result.chunk_ids
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, vectors)
    assert store.get_collection("notes").version == collection.version + 1


def test_wrong_vector_shape_is_rejected_without_rows(store: Store, collection: Collection) -> None:
    chunks = [ChunkRecord(0, "one", 0, 3, 1), ChunkRecord(1, "two", 4, 7, 1)]
    fields = {"title": "t", "source_name": "s", "source_type": "text/plain", "size": 7}
    fields |= {"content_hash": "h", "text": "one two"}
    for vectors in (np.zeros((1, DIMENSIONS)), np.zeros((2, DIMENSIONS + 1))):
        with pytest.raises(BadRequest, match="Expected 2 vectors"):
            store.add_document(collection.id, fields, chunks, vectors)
    assert counts(store) == (0, 0, 0)
    assert store.get_collection("notes").version == collection.version


def test_failure_mid_replace_rolls_back_everything(
    store: Store, add_doc: AddDoc, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = add_doc(["old words here", "more old words"], title="Old")
    before = counts(store)
    version = store.get_collection("notes").version

    # Fail at the very end of the transaction: after the old chunks were deleted, the
    # document updated and the new chunks inserted.
    def explode(*args: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Store, "_bump_version", staticmethod(explode))
    with pytest.raises(RuntimeError, match="disk on fire"):
        add_doc(["new words"], title="New", replace_id=original.document_id)
    with pytest.raises(RuntimeError, match="disk on fire"):
        add_doc(["another document"])

    assert counts(store) == before
    assert store.get_document(original.document_id).title == "Old"
    assert [c.id for c in store.get_chunks(original.document_id)] == original.chunk_ids
    assert store.get_collection("notes").version == version
    collection_id = store.get_collection("notes").id
    assert store.keyword_search(collection_id, "new another", 10) == []
    assert {i for i, _ in store.keyword_search(collection_id, "old", 10)} == set(original.chunk_ids)


def test_replace_keeps_document_id_and_returns_removed_chunks(
    store: Store, add_doc: AddDoc
) -> None:
    first = add_doc(["first version"], external_id="doc-1")
    created = store.get_document(first.document_id).created_at
    second = add_doc(["second version", "with two chunks"], replace_id=first.document_id)

    assert second.document_id == first.document_id
    assert second.removed_ids == first.chunk_ids
    assert not set(second.chunk_ids) & set(first.chunk_ids)
    document = store.get_document(first.document_id)
    assert (document.text, document.chunk_count, document.created_at) == (
        "second version\nwith two chunks",
        2,
        created,
    )
    assert counts(store) == (1, 2, 2)
    ids, _ = store.chunk_vectors(store.get_collection("notes").id)
    assert ids.tolist() == second.chunk_ids


def test_replace_of_a_document_in_another_collection_is_not_found(
    store: Store, add_doc: AddDoc
) -> None:
    other = store.ensure_collection("other", "test-model", DIMENSIONS, "faiss")
    foreign = add_doc(["elsewhere"], collection_id=other.id)
    with pytest.raises(NotFound):
        add_doc(["hijack"], replace_id=foreign.document_id)
    assert store.get_document(foreign.document_id).text == "elsewhere"


def test_delete_document_removes_chunks_fts_and_bumps_version(
    store: Store, add_doc: AddDoc
) -> None:
    keep = add_doc(["keep pebble"])  # not "this": a stop word to PostgreSQL
    gone = add_doc(["delete pebble", "and pebble"])
    version = store.get_collection("notes").version

    assert store.delete_document(gone.document_id) == gone.chunk_ids
    assert counts(store) == (1, 1, 1)
    assert store.get_collection("notes").version == version + 1
    assert [
        i for i, _ in store.keyword_search(store.get_collection("notes").id, "pebble", 10)
    ] == keep.chunk_ids
    with pytest.raises(NotFound):
        store.get_document(gone.document_id)
    with pytest.raises(NotFound):
        store.delete_document(gone.document_id)


def test_ids_are_never_reused_after_deleting_the_newest(store: Store, add_doc: AddDoc) -> None:
    # A reused chunk id would let a stale index vector stand in for a different chunk.
    gone = add_doc(["temporary"])
    store.delete_document(gone.document_id)
    fresh = add_doc(["permanent"])
    assert fresh.document_id > gone.document_id
    assert min(fresh.chunk_ids) > max(gone.chunk_ids)


def test_find_document_by_each_key_within_one_collection(
    store: Store, collection: Collection, add_doc: AddDoc
) -> None:
    other = store.ensure_collection("other", "test-model", DIMENSIONS, "faiss")
    mine = add_doc(["x"], content_hash="h1", external_id="e1", source_name="a.txt")
    add_doc(["y"], content_hash="h1", external_id="e1", source_name="a.txt", collection_id=other.id)

    for key in ({"content_hash": "h1"}, {"external_id": "e1"}, {"source_name": "a.txt"}):
        found = store.find_document(collection.id, **key)
        assert found is not None and found.id == mine.document_id
    assert store.find_document(collection.id, content_hash="h1", source_name="b.txt") is None
    assert store.find_document(collection.id, content_hash="nope") is None
    with pytest.raises(TypeError):
        store.find_document(collection.id)


def test_find_document_returns_the_newest_match(
    store: Store, collection: Collection, add_doc: AddDoc
) -> None:
    add_doc(["v1"], source_name="same.txt")
    newest = add_doc(["v2"], source_name="same.txt")
    found = store.find_document(collection.id, source_name="same.txt")
    assert found is not None and found.id == newest.document_id


def test_list_documents_pages_newest_first_with_total(
    store: Store, collection: Collection, add_doc: AddDoc
) -> None:
    other = store.ensure_collection("other", "test-model", DIMENSIONS, "faiss")
    ids = [add_doc([f"doc {i}"]).document_id for i in range(5)]
    add_doc(["elsewhere"], collection_id=other.id)

    page, total = store.list_documents(collection.id, limit=2, offset=1)
    assert ([d.id for d in page], total) == ([ids[3], ids[2]], 5)
    assert all(d.text is None for d in page)  # listings leave the text out
    assert store.list_documents(limit=100)[1] == 6


def test_chunk_lookups(store: Store, collection: Collection, add_doc: AddDoc) -> None:
    a = add_doc(["one", "two"])
    b = add_doc(["three"])
    assert store.get_chunk(b.chunk_ids[0]).text == "three"
    with pytest.raises(NotFound):
        store.get_chunk(999)
    found = store.get_chunks_by_id([b.chunk_ids[0], a.chunk_ids[0], 999])
    assert {i: c.text for i, c in found.items()} == {a.chunk_ids[0]: "one", b.chunk_ids[0]: "three"}
    ids, vectors = store.chunk_vectors(collection.id, [b.chunk_ids[0], a.chunk_ids[1]])
    assert ids.tolist() == [a.chunk_ids[1], b.chunk_ids[0]]
    assert vectors.shape == (2, DIMENSIONS)
    assert store.chunk_ids(collection.id).tolist() == [*a.chunk_ids, *b.chunk_ids]


def test_storing_and_reading_vectors_never_count_the_collections_documents(
    store: Store, collection: Collection, add_doc: AddDoc, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each document stored and each search reads vectors: counting the collection's documents
    there would cost more the bigger the collection grows."""
    a = add_doc(["one", "two"])
    statements: list[str] = []

    def spying(read: Callable[..., Any]) -> Callable[..., Any]:
        def spy(self: Store, sql: str, params: Iterable[Any] = ()) -> Any:
            statements.append(sql)
            return read(self, sql, params)

        return spy

    for method in ("_rows", "_tuples"):
        monkeypatch.setattr(Store, method, spying(getattr(Store, method)))
    add_doc(["three"])
    store.chunk_vectors(collection.id, a.chunk_ids)
    store.document_chunk_vectors(collection.id)
    store.changes(collection.id, 0, store.collection_version(collection.id))
    assert store.collection_dimensions(collection.id) == DIMENSIONS
    assert statements and not [sql for sql in statements if "count(" in sql.lower()]
    with pytest.raises(NotFound):
        store.collection_dimensions(999)


def test_keyword_search_ranks_by_bm25_with_stemming(
    store: Store, collection: Collection, add_doc: AddDoc
) -> None:
    other = store.ensure_collection("other", "test-model", DIMENSIONS, "faiss")
    result = add_doc(
        [
            "The runner was running and runs daily",
            "A short note that mentions running once among many other unrelated words",
            "Nothing relevant at all",
        ]
    )
    add_doc(["running running running"], collection_id=other.id)

    hits = store.keyword_search(collection.id, "runs", 10)
    assert [chunk_id for chunk_id, _ in hits] == result.chunk_ids[:2]
    assert hits[0][1] > hits[1][1] > 0
    assert store.keyword_search(collection.id, "runs", 1) == hits[:1]


@pytest.mark.parametrize(
    "query",
    [
        '"',
        '"unbalanced quote',
        "-foo",
        "a*",
        "AND",
        "OR NOT",
        "NEAR(",
        "NEAR(running runs, 2)",
        "((",
        "running)",
        "col:running",
        "^running",
        "🔥🚀",
        "running 🔥",
        "___",
        "",
        "   ",
        "'; DROP TABLE chunks; --",
    ],
)
def test_keyword_search_never_raises_on_hostile_queries(
    store: Store, collection: Collection, add_doc: AddDoc, query: str
) -> None:
    add_doc(["running and foo and a"])
    hits = store.keyword_search(collection.id, query, 5)
    assert isinstance(hits, list)
    assert counts(store) == (1, 1, 1)


def test_fts_query_quotes_every_word_once(store: Store) -> None:
    words = fts_words('NEAR( "Cats" -dogs a* cats 🔥 ((')
    assert words == ["near", "cats", "dogs", "a"]
    expected = {
        "sqlite": '"near" OR "cats" OR "dogs" OR "a"',
        "postgresql": "'near' | 'cats' | 'dogs' | 'a'",
    }
    assert store.dialect.match(words) == expected[store.dialect.name]
    assert store.dialect.match(fts_words("🔥 (( -- *")) == ""


def test_keyword_coverage_weighs_the_query_words_a_chunk_holds_by_rarity(
    store: Store, collection: Collection, add_doc: AddDoc, rng: np.random.Generator
) -> None:
    result = add_doc(
        [
            "zebras graze on the savanna",
            "the savanna is wide and the sun is hot",
            "the sun sets over the savanna",
            "giraffes and the zebra drink at the river",
            *(f"unrelated note number {n}" for n in range(8)),
        ]
    )
    zebra, savanna, _, giraffe = result.chunk_ids[:4]
    # "zebra" is in 2 of 12 chunks, "savanna" in 3: holding "zebra" covers more than "savanna".
    holds_zebra = store.keyword_coverage(collection.id, "zebra savanna", giraffe)
    holds_savanna = store.keyword_coverage(collection.id, "zebra savanna", savanna)
    assert 0 < holds_savanna < holds_zebra < 1
    assert store.keyword_coverage(collection.id, "zebras grazing savanna", zebra) == 1.0
    assert store.keyword_coverage(collection.id, "penguin", zebra) == 0.0
    assert store.keyword_coverage(collection.id, "🔥 ((", zebra) == 0.0
    # A chunk's section path counts as its text does (keyword search matches both).
    chunks, text = chunk_records(["lions rest in the shade"], 3, section="Savanna wildlife")
    fields = {"title": "t", "source_name": "a.txt", "source_type": "txt", "size": 1}
    fields |= {"content_hash": "lions", "text": text}
    added = store.add_document(collection.id, fields, chunks, unit_vectors(rng, 1))
    assert store.keyword_coverage(collection.id, "savanna lions", added.chunk_ids[0]) == 1.0
    assert store.keyword_coverage(collection.id, "zebra", 10**9) == 0.0  # no such chunk


def chunk_texts(store: Store, chunk_ids: Iterable[int]) -> dict[int, str]:
    return {i: chunk.text for i, chunk in store.get_chunks_by_id(chunk_ids).items()}


def test_highlight_marks_the_words_keyword_search_matches(
    store: Store, collection: Collection, add_doc: AddDoc
) -> None:
    doc = add_doc(["Cells induced by the drug grew.", "Nothing relevant here.", "Drugs, drugs!"])
    texts = chunk_texts(store, doc.chunk_ids)
    marked = store.highlight(collection.id, "inducing drugs", texts, "[", "]")
    first, _, third = doc.chunk_ids
    assert marked == {first: "Cells [induced] by the [drug] grew.", third: "[Drugs], [drugs]!"}
    assert store.highlight(collection.id, "🔥 ((", texts, "[", "]") == {}
    # Nothing of one call stays for the next (SQLite marks in a scratch table).
    assert store.highlight(collection.id, "drug", {third: texts[third]}, "[", "]") == {
        third: "[Drugs], [drugs]!"
    }
    if store.dialect.name == "sqlite":
        # The scratch table marks exactly what FTS5's highlight() on the collection's own does.
        fts = fts_table(collection.id)
        sql = f"SELECT rowid, highlight({fts}, 0, '[', ']') FROM {fts} WHERE {fts} MATCH ?"
        assert dict(store._tuples(sql, ['"inducing" OR "drugs"'])) == marked


def test_keyword_search_leaves_out_common_words_unless_nothing_else(
    store: Store, collection: Collection, add_doc: AddDoc
) -> None:
    sqlite_only(store, "PostgreSQL's English configuration drops 'the' as a stop word anyway")
    common = add_doc([f"the report number {n}" for n in range(COMMON_MIN)])
    rare = add_doc(["the zebra"])
    assert store.keyword_terms(collection.id, "The zebra!") == ["zebra"]
    assert store.keyword_terms(collection.id, "the the") == ["the"]
    assert store.keyword_search(collection.id, "the zebra", 50) == [
        (rare.chunk_ids[0], pytest.approx(store.keyword_search(collection.id, "zebra", 1)[0][1]))
    ]
    assert len(store.keyword_search(collection.id, "the", 50)) == 50
    assert (
        "<b>the</b>"
        not in store.highlight(
            collection.id, "the zebra", chunk_texts(store, rare.chunk_ids), "<b>", "</b>"
        )[rare.chunk_ids[0]]
    )
    # After a write the counts are taken afresh: now both words are common, so both count.
    add_doc(["zebra"] * COMMON_MIN)
    found = {i for i, _ in store.keyword_search(collection.id, "the zebra", 3000)}
    assert set(common.chunk_ids) <= found


def test_common_words_and_bm25_are_counted_per_collection(
    store: Store, collection: Collection, add_doc: AddDoc
) -> None:
    sqlite_only(store, "PostgreSQL's English configuration drops 'the' as a stop word anyway")
    small = store.ensure_collection("small", "test-model", DIMENSIONS, "faiss")
    mine = add_doc(["the zebra", "a lion"], collection_id=small.id)
    queries = ("the", "the zebra", "lion")
    before = {q: store.keyword_search(small.id, q, 10) for q in queries}
    assert [i for i, _ in before["the"]] == mine.chunk_ids[:1]
    # "the" is in every chunk of another, large collection: common there, not here. The other
    # collection's rows change neither which words count nor their BM25 weights.
    add_doc([f"the report number {n}" for n in range(COMMON_MIN + 1)])
    for query in queries:
        after = store.keyword_search(small.id, query, 10)
        assert after == [(i, pytest.approx(score)) for i, score in before[query]]
    marked = store.highlight(
        small.id, "the zebra", chunk_texts(store, mine.chunk_ids), "<b>", "</b>"
    )
    assert marked[mine.chunk_ids[0]] == "<b>the</b> <b>zebra</b>"


def test_a_shared_fts_table_is_split_per_collection(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = Store(path)
    notes = store.ensure_collection("notes", "m", DIMENSIONS, "faiss")
    other = store.ensure_collection("other", "m", DIMENSIONS, "faiss")
    rng = np.random.default_rng(0)
    for target, text in ((notes, "river otters"), (other, "river barges")):
        chunk = ChunkRecord(0, text, 0, len(text), 2)
        fields = {"title": text, "source_name": "a.txt", "source_type": "txt", "size": 1}
        fields |= {"content_hash": text, "text": text}
        store.add_document(target.id, fields, [chunk], unit_vectors(rng, 1))
    # Rewind the file to the layout before per-collection tables: one table, three triggers.
    with store._transaction() as conn:
        for c in (notes, other):
            conn.execute(f"DROP TABLE {fts_table(c.id)}")
            conn.execute(f"DROP VIEW chunks_{c.id}")
            for trigger in ("ai", "ad", "au"):
                conn.execute(f"DROP TRIGGER chunks_{trigger}_{c.id}")
        conn.execute(
            "CREATE VIRTUAL TABLE chunks_fts USING FTS5 (text, section, tokenize='porter', "
            "content='chunks')"
        )
        conn.execute("CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN SELECT 1; END")
        conn.execute("DELETE FROM schema_migrations WHERE version = 2")  # as before migration 2
    store.close()
    store = Store(path)
    assert "chunks_fts" not in store.db.table_names()
    assert [i for i, _ in store.keyword_search(notes.id, "river", 5)] == [1]
    assert [i for i, _ in store.keyword_search(other.id, "river", 5)] == [2]
    store.close()


def test_keyword_search_treats_operators_as_words(
    store: Store, collection: Collection, add_doc: AddDoc
) -> None:
    result = add_doc(["cats AND dogs", "near the river"])
    assert [i for i, _ in store.keyword_search(collection.id, "NEAR(", 5)] == [result.chunk_ids[1]]
    if store.dialect.name == "postgresql":
        return  # "and" is a stop word there: "-cats" below is the SQLite FTS5 case
    assert store.keyword_search(collection.id, "-cats", 5)[0][0] == result.chunk_ids[0]
    assert store.keyword_search(collection.id, "🔥 ((", 5) == []


def test_compact_runs_after_deletes(store: Store, add_doc: AddDoc) -> None:
    store.delete_document(add_doc(["to be vacuumed"]).document_id)
    store.compact()
    assert counts(store) == (0, 0, 0)


def test_concurrent_writers_from_threads(
    store: Store, collection: Collection, add_doc: AddDoc
) -> None:
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(10):
                add_doc([f"thread {n} doc {i}", "second chunk"])
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert counts(store) == (40, 80, 80)
    assert store.get_collection("notes").version == collection.version + 40


def test_a_rare_word_outranks_a_common_one(
    store: Store, collection: Collection, add_doc: AddDoc
) -> None:
    # PostgreSQL's ts_rank has no IDF of its own: the store weighs each word by it.
    add_doc(["apple juice"] * 10)
    kiwi = add_doc(["kiwi juice"])  # as long as the others, so only the words' rarity differs
    found = store.keyword_search(collection.id, "apple kiwi", 20)
    assert found[0][0] == kiwi.chunk_ids[0]
    assert len(found) == 11


def test_stop_words_are_not_keyword_terms_where_the_database_drops_them(
    store: Store, collection: Collection, add_doc: AddDoc
) -> None:
    add_doc(["the zebra grazes"])
    terms = store.keyword_terms(collection.id, "the zebra")
    assert terms == (["zebra"] if store.dialect.drops_stop_words else ["the", "zebra"])
    # So a chunk holding every word PostgreSQL searches covers the whole query.
    [(chunk_id, _)] = store.keyword_search(collection.id, "zebra", 5)
    assert store.keyword_coverage(collection.id, "the zebra", chunk_id) == pytest.approx(1.0)
