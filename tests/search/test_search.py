"""The search layer with the fake encoder: modes, grouping, paging, filters, neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from app.errors import BadRequest, NotFound
from app.search import Filters, Searcher, SearchQuery, Signal
from app.search.fusion import (
    CONFIDENCE,
    KEYWORD_WEIGHT,
    MAX_TRUST,
    fuse,
    keyword_weight,
    standout,
)
from app.search.query import MAX_RESULTS
from app.search.search import top
from app.store.database import Store
from app.store.keywords import COMMON_MIN
from app.store.records import Collection
from tests.support.documents import AddIndexed


@pytest.fixture
def corpus(add: AddIndexed) -> dict[str, int]:
    """A few documents, some with several chunks."""
    return {
        "cats": add(
            "Cats",
            ["Cats purr and sleep on warm windowsills.", "A kitten chases string all day."],
            metadata={"lang": "en", "year": 2020},
        ),
        "dogs": add(
            "Dogs",
            ["Dogs bark at the postman.", "A puppy fetches sticks in the park."],
            metadata={"lang": "en", "year": 2021},
        ),
        "tea": add(
            "Tea",
            ["Green tea is steeped in hot water for three minutes."],
            source_type="text/markdown",
            metadata={"lang": "fr"},
        ),
        "bread": add("Bread", ["Sourdough bread needs a lively starter and patience."]),
    }


def test_keyword_mode_finds_the_word_and_marks_it(searcher: Searcher, corpus: dict) -> None:
    page = searcher.search("default", SearchQuery("postman", mode="keyword"))
    assert [hit.document.id for hit in page.hits] == [corpus["dogs"]]
    hit = page.hits[0]
    assert "<mark>postman</mark>" in hit.snippet
    assert hit.keyword is not None and hit.keyword.rank == 1
    assert hit.semantic is None and hit.fused is None
    assert hit.score == hit.keyword.score


def test_semantic_mode_ranks_every_document(searcher: Searcher, corpus: dict) -> None:
    page = searcher.search("default", SearchQuery("green tea steeped", mode="semantic"))
    assert page.hits[0].document.id == corpus["tea"]
    assert page.total == len(corpus)
    assert all(hit.keyword is None and hit.semantic is not None for hit in page.hits)
    scores = [hit.score for hit in page.hits]
    assert scores == sorted(scores, reverse=True)


def test_hybrid_explains_both_rankings(searcher: Searcher, corpus: dict) -> None:
    hit = searcher.search("default", SearchQuery("puppy fetches sticks")).hits[0]
    assert hit.document.id == corpus["dogs"]
    assert hit.chunk.text.startswith("A puppy")  # the document's best chunk
    assert hit.semantic == Signal(1, pytest.approx(hit.semantic.score))
    assert hit.keyword is not None and hit.keyword.rank == 1
    # The best keyword hit holds every word of the query: keyword counts, by its confidence.
    assert 0 < hit.keyword_weight <= KEYWORD_WEIGHT * MAX_TRUST
    # Both rankings put it first: its cosine plus the whole keyword weight.
    assert hit.fused == pytest.approx(hit.semantic.score + hit.keyword_weight)
    assert hit.score == hit.fused


def test_keyword_counts_little_when_its_best_hit_holds_little_of_the_query(
    searcher: Searcher, corpus: dict
) -> None:
    query = SearchQuery("puppy quantum entanglement of distant photons in a vacuum chamber")
    hits = searcher.search("default", query).hits
    assert all(hit.keyword_weight == 0 for hit in hits)
    assert all(hit.fused == pytest.approx(hit.semantic.score) for hit in hits if hit.semantic)
    semantic = searcher.search("default", SearchQuery(query.text, mode="semantic")).hits
    assert [h.document.id for h in hits[: len(semantic)]] == [h.document.id for h in semantic]


def test_group_by_chunk_returns_chunks(searcher: Searcher, corpus: dict) -> None:
    page = searcher.search("default", SearchQuery("a", mode="semantic", k=50, group_by="chunk"))
    assert page.total == 6
    assert len({hit.chunk.id for hit in page.hits}) == 6


def test_group_by_document_gives_one_hit_per_document(searcher: Searcher, corpus: dict) -> None:
    page = searcher.search("default", SearchQuery("a puppy and a kitten", k=50))
    ids = [hit.document.id for hit in page.hits]
    assert len(ids) == len(set(ids)) == page.total


@pytest.mark.parametrize("mode", ["hybrid", "semantic", "keyword"])
@pytest.mark.parametrize("group_by", ["document", "chunk"])
def test_pages_have_no_duplicates_or_gaps(
    searcher: Searcher, add: AddIndexed, mode: str, group_by: str
) -> None:
    # Many near-identical documents: lots of ties, the case that breaks unstable orders.
    for i in range(40):
        add(f"Note {i}", [f"meeting notes about the budget {i % 3}", "budget review"])
    query = "budget meeting notes"
    whole = searcher.search("default", SearchQuery(query, mode, k=200, group_by=group_by))
    paged = []
    for offset in range(0, whole.total, 7):
        page = searcher.search("default", SearchQuery(query, mode, 7, offset, group_by))
        assert page.total == whole.total
        paged += [(hit.document.id, hit.chunk.id) for hit in page.hits]
    assert paged == [(hit.document.id, hit.chunk.id) for hit in whole.hits]
    assert len(set(paged)) == len(paged) == whole.total
    assert [hit.rank for hit in whole.hits] == list(range(1, whole.total + 1))


def test_filters(searcher: Searcher, corpus: dict) -> None:
    def found(filters: Filters, mode: str = "hybrid") -> set[int]:
        page = searcher.search("default", SearchQuery("a the", mode, k=50, filters=filters))
        return {hit.document.id for hit in page.hits}

    assert found(Filters(document_ids=(corpus["tea"],))) == {corpus["tea"]}
    assert found(Filters(source_types=("text/markdown",))) == {corpus["tea"]}
    assert found(Filters(metadata={"lang": "en"}), "semantic") == {corpus["cats"], corpus["dogs"]}
    assert found(Filters(metadata={"lang": "en", "year": 2021})) == {corpus["dogs"]}
    assert found(Filters(metadata={"year": "2021"})) == set()  # a string is not the number
    assert found(Filters(metadata={"missing": "x"}), "keyword") == set()


def test_filters_over_fetch_when_many_chunks_pass(
    searcher: Searcher, corpus: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Force the index path (not the exact scoring of few chunks) and check it agrees.
    exact = searcher.search("default", SearchQuery("dogs", "semantic", 50, filters=_english()))
    monkeypatch.setattr("app.search.search.EXACT_LIMIT", 0)
    fetched = searcher.search("default", SearchQuery("dogs", "semantic", 50, filters=_english()))
    assert [h.chunk.id for h in fetched.hits] == [h.chunk.id for h in exact.hits]
    assert [h.score for h in fetched.hits] == pytest.approx([h.score for h in exact.hits])


def _english() -> Filters:
    return Filters(metadata={"lang": "en"})


def test_any_user_text_is_safe(searcher: Searcher, corpus: dict) -> None:
    for text in ['"unbalanced', "NEAR(a b)", "cats AND -dogs*", "(((", "<script>", "ça va?"]:
        searcher.search("default", SearchQuery(text))
    page = searcher.search("default", SearchQuery("!!!", mode="keyword"))
    assert page.hits == [] and page.total == 0


def test_snippets_escape_html(searcher: Searcher, add: AddIndexed) -> None:
    add("Markup", ["Use <b>bold</b> & keep the tags escaped"])
    hit = searcher.search("default", SearchQuery("bold tags", mode="keyword")).hits[0]
    assert "&lt;b&gt;<mark>bold</mark>&lt;/b&gt; &amp;" in hit.snippet
    assert "<b>" not in hit.snippet


@pytest.mark.parametrize(
    ("query", "param"),
    [
        (SearchQuery("x", k=0), "k"),
        (SearchQuery("x", k=MAX_RESULTS + 1), "k"),
        (SearchQuery("x", offset=-1), "offset"),
        (SearchQuery("x", k=10, offset=MAX_RESULTS), "offset"),
        (SearchQuery("x", mode="fuzzy"), "mode"),
        (SearchQuery("x", group_by="section"), "group_by"),
        (SearchQuery("   "), "query"),
    ],
)
def test_bad_parameters(searcher: Searcher, corpus: dict, query: SearchQuery, param: str) -> None:
    with pytest.raises(BadRequest) as error:
        searcher.search("default", query)
    assert error.value.param == param


def test_unknown_collection(searcher: Searcher) -> None:
    with pytest.raises(NotFound, match="No collection named 'nope'"):
        searcher.search("nope", SearchQuery("x"))


def test_empty_collection_says_what_to_do(searcher: Searcher, collection: Collection) -> None:
    page = searcher.search("default", SearchQuery("anything"))
    assert page.hits == [] and page.total == 0
    assert page.message is not None and "POST /api/documents" in page.message


def test_k_beyond_the_collection_returns_what_there_is(searcher: Searcher, corpus: dict) -> None:
    page = searcher.search("default", SearchQuery("tea", mode="semantic", k=100))
    assert len(page.hits) == page.total == len(corpus)


def test_similar_documents_exclude_the_document(searcher: Searcher, add: AddIndexed) -> None:
    first = add("Cats 1", ["cats purr softly", "cats sleep a lot"])
    second = add("Cats 2", ["cats purr loudly and sleep"])
    add("Tax", ["quarterly tax filing deadlines"])
    similar = searcher.similar_documents(first, 5)
    assert [n.document.id for n in similar][0] == second
    assert first not in {n.document.id for n in similar}
    assert len(similar) == 2


def test_chunk_neighbors_exclude_the_chunk(
    searcher: Searcher, store: Store, add: AddIndexed
) -> None:
    doc = add("Cats", ["cats purr softly", "cats purr loudly", "tax filing deadlines"])
    first, second, _ = [chunk.id for chunk in store.get_chunks(doc)]
    neighbors = searcher.chunk_neighbors(first, 1)
    assert [n.chunk.id for n in neighbors] == [second]
    assert first not in {n.chunk.id for n in searcher.chunk_neighbors(first, 10)}


def test_nearest_to_a_vector_or_text(searcher: Searcher, corpus: dict, embedder) -> None:
    vector = embedder.embed(["Dogs bark at the postman."])[0]
    found, message = searcher.nearest("default", 2, vector=list(vector * 3))
    assert message is None
    assert found[0].chunk.text == "Dogs bark at the postman."
    assert found[0].score == pytest.approx(1.0, abs=1e-5)
    by_document, _ = searcher.nearest("default", 10, text="a puppy", group_by="document")
    assert len({n.document.id for n in by_document}) == len(by_document) == len(corpus)


@pytest.mark.parametrize(
    ("text", "vector", "param"),
    [
        (None, None, "text"),
        ("x", [1.0] * 32, "text"),
        (None, [1.0] * 3, "vector"),
        (None, [0.0] * 32, "vector"),
    ],
)
def test_nearest_rejects_bad_input(
    searcher: Searcher, corpus: dict, text: str | None, vector: list | None, param: str
) -> None:
    with pytest.raises(BadRequest) as error:
        searcher.nearest("default", 3, text=text, vector=vector)
    assert error.value.param == param


def test_unknown_ids(searcher: Searcher) -> None:
    with pytest.raises(NotFound):
        searcher.similar_documents(999, 3)
    with pytest.raises(NotFound):
        searcher.chunk_neighbors(999, 3)


def test_fuse_adds_the_weighted_scaled_keyword_score_to_the_cosine() -> None:
    semantic = {1: Signal(1, 0.8), 2: Signal(2, 0.7)}
    keyword = {1: Signal(2, 5.0), 3: Signal(1, 10.0)}
    fused = fuse(semantic, keyword, 0.4)
    assert fused == pytest.approx({1: 0.8 + 0.4 * 0.5, 2: 0.7, 3: 0.4})
    assert fuse(semantic, keyword, 0.0) == pytest.approx({1: 0.8, 2: 0.7, 3: 0.0})
    assert fuse(semantic, {}, 0.4) == pytest.approx({1: 0.8, 2: 0.7})


@pytest.mark.parametrize(
    ("coverage", "weight"),
    [
        (0.0, 0.0),
        (0.2, 0.0),
        (0.25, KEYWORD_WEIGHT / 2),
        (0.3, KEYWORD_WEIGHT),
        (1.0, KEYWORD_WEIGHT),
    ],
)
def test_keyword_weight_ramps_with_coverage(coverage: float, weight: float) -> None:
    assert keyword_weight(coverage) == pytest.approx(weight)
    assert keyword_weight(coverage, 2.0, 2.0) == pytest.approx(weight)  # equally sure


def test_keyword_weight_follows_the_lists_confidence_within_bounds() -> None:
    assert keyword_weight(1.0, 1.0, 2.0) == pytest.approx(KEYWORD_WEIGHT * (1 + CONFIDENCE))
    assert keyword_weight(1.0, 2.0, 1.0) == pytest.approx(KEYWORD_WEIGHT * (1 - CONFIDENCE))
    assert keyword_weight(1.0, 0.0, 1e6) == pytest.approx(KEYWORD_WEIGHT * MAX_TRUST)
    assert keyword_weight(1.0, 1e6, 0.0) == 0.0
    assert keyword_weight(0.0, 0.0, 1e6) == 0.0  # the coverage gate still closes


def test_standout_reads_how_far_the_top_score_leads() -> None:
    level = [1.0, 0.99, 0.98, 0.97, 0.96, 0.95]
    leading = [3.0, 0.99, 0.98, 0.97, 0.96, 0.95]
    assert standout(leading) > standout(level) > 0
    assert standout([0.5] * 5) == 0.0
    assert standout([0.5]) == standout([]) == 0.0


def test_a_hit_found_by_keyword_alone_is_fused_with_its_own_cosine(
    searcher: Searcher, corpus: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    dogs = {chunk.id for chunk in searcher.store.get_chunks(corpus["dogs"])}
    candidates = searcher._candidates

    def without_dogs(*args: object) -> tuple:  # as if the vector index had not found them
        semantic, keyword, vector = candidates(*args)
        return [hit for hit in semantic if hit[0] not in dogs], keyword, vector

    monkeypatch.setattr(searcher, "_candidates", without_dogs)
    hits = searcher.search("default", SearchQuery("postman", group_by="chunk", k=10)).hits
    [found] = [hit for hit in hits if hit.chunk.id in dogs]
    assert found.keyword is not None and found.keyword.rank == 1
    collection = searcher.store.get_collection("default")
    _, vectors = searcher.store.chunk_vectors(collection.id, [found.chunk.id])
    cosine = float(vectors[0] @ searcher.embedder.embed(["postman"])[0])
    assert found.similarity == pytest.approx(cosine)
    assert found.fused == pytest.approx(cosine + found.keyword_weight)


def test_top_breaks_ties_by_id() -> None:
    ranking = top(np.array([5, 3, 9, 1]), np.array([0.5, 0.9, 0.5, 0.5]), 3)
    assert ranking == [(3, 0.9), (1, 0.5), (5, 0.5)]


def test_both_backends_leave_out_words_common_in_the_collection(
    searcher: Searcher, add: AddIndexed
) -> None:
    add("Reports", [f"the report number {n}" for n in range(COMMON_MIN)])
    zebra = add("Zebra", ["the zebra"])
    alone = searcher.search("default", SearchQuery("zebra", mode="keyword")).hits[0]
    # "the" is in every chunk but one: FTS5 and Qdrant's BM25 alike rank by "zebra" alone.
    [hit] = searcher.search("default", SearchQuery("the zebra", mode="keyword")).hits
    assert hit.document.id == zebra
    assert hit.keyword.score == pytest.approx(alone.keyword.score)
    assert searcher.search("default", SearchQuery("the the", mode="keyword")).total > 1
    assert searcher.search("default", SearchQuery("!!!", mode="keyword")).total == 0
