"""Metadata filters: parsing (400 naming the bad part) and each operator in SQLite."""

from __future__ import annotations

import numpy as np
import pytest

from app.errors import BadRequest
from app.store.database import Store
from app.store.filters import Condition, Filters, parse_metadata
from tests.support.documents import chunk_records

DOCS = {
    "a": {"year": 2019, "lang": "en", "date": "2024-01-05", "draft": True, "score": 0.5},
    "b": {"year": 2021, "lang": "de", "date": "2024-03-01T10:00:00Z", "draft": False},
    "c": {"year": 2023, "lang": "fr", "date": "2023-12-31", "tag": None},
    "d": {"year": "2021", "odd key/ü": 1},
}


@pytest.fixture
def ids(store: Store) -> dict[str, int]:
    collection = store.ensure_collection("default", "fake-model", 4, "torch")
    found = {}
    for name, metadata in DOCS.items():
        chunks, body = chunk_records([f"text {name}"], 5, None)
        fields = {
            "title": name,
            "source_name": name,
            "source_type": "text/plain",
            "size": len(body),
            "content_hash": name,
            "text": body,
            "metadata": metadata,
        }
        vectors = np.eye(4, dtype=np.float32)[:1]
        found[name] = store.add_document(collection.id, fields, chunks, vectors).document_id
    return found


def matching(store: Store, ids: dict[str, int], metadata: dict) -> set[str]:
    collection_id = store.get_collection("default").id
    allowed = set(store.filter_documents(collection_id, Filters(metadata=metadata)))
    return {name for name, i in ids.items() if i in allowed}


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"lang": "en"}, {"a"}),
        ({"lang": {"$eq": "en"}}, {"a"}),
        ({"lang": {"$ne": "en"}}, {"b", "c", "d"}),  # a missing field is not equal
        ({"lang": {"$in": ["en", "fr"]}}, {"a", "c"}),
        ({"lang": {"$nin": ["en", "fr"]}}, {"b", "d"}),
        ({"tag": {"$in": [None]}}, {"c"}),
        ({"draft": {"$in": [True]}}, {"a"}),
        ({"draft": False}, {"b"}),
        ({"draft": 1}, set()),  # JSON types must agree: 1 is not true
        ({"year": 2021.0}, {"b"}),  # but integers and reals compare
        ({"year": "2021"}, {"d"}),
        ({"tag": None}, {"c"}),
        ({"lang": {"$ne": None}}, {"a", "b", "c", "d"}),
        ({"year": {"$gt": 2019}}, {"b", "c"}),  # the string "2021" is not a number
        ({"year": {"$gte": 2019, "$lt": 2023}}, {"a", "b"}),
        ({"year": {"$lte": 2021.0}}, {"a", "b"}),
        ({"score": {"$lt": 1}}, {"a"}),
        ({"date": {"$gte": "2024-01-01"}}, {"a", "b"}),
        ({"date": {"$lt": "2024-03-01T11:00:00+02:00"}}, {"a", "c"}),  # 09:00Z < 10:00Z
        ({"date": {"$lt": "2024-03-01T13:00:00+02:00"}}, {"a", "b", "c"}),
        ({"date": {"$gt": "2024-03-01T10:00:00Z"}}, set()),
        ({"tag": {"$exists": True}}, {"c"}),
        ({"lang": {"$exists": False}}, {"d"}),
        ({"odd key/ü": {"$gte": 1}}, {"d"}),
        ({"lang": {"$in": []}}, set()),
    ],
)
def test_operators(store: Store, ids: dict[str, int], metadata: dict, expected: set) -> None:
    assert matching(store, ids, metadata) == expected


def test_parse_gives_plain_conditions() -> None:
    assert parse_metadata({"y": {"$gte": 1, "$lt": 5}, "l": "en"}) == (
        Condition("y", "$gte", 1),
        Condition("y", "$lt", 5),
        Condition("l", "$eq", "en"),
    )


@pytest.mark.parametrize(
    ("metadata", "param", "words"),
    [
        ({"year": {"$gtx": 1}}, "filters.metadata.year", "'$gtx'"),
        ({"year": {"nested": 1}}, "filters.metadata.year", "'nested'"),
        ({"year": {"$gt": "soon"}}, "filters.metadata.year", "ISO 8601"),
        ({"year": {"$gt": True}}, "filters.metadata.year", "number"),
        ({"year": {"$in": "en"}}, "filters.metadata.year", "list"),
        ({"year": {"$in": [[1]]}}, "filters.metadata.year", "string, number"),
        ({"year": {"$exists": 1}}, "filters.metadata.year", "true or false"),
        ({"year": [1, 2]}, "filters.metadata.year", "string, number"),
        ({"year": {}}, "filters.metadata.year", "string, number"),
        ({"year": {"$gt": 10**30}}, "filters.metadata.year", "number"),
        ({"year": {"$gt": float("nan")}}, "filters.metadata.year", "number"),
        ({"year": {"$in": [float("inf")]}}, "filters.metadata.year", "finite"),
        ({"year": 10**30}, "filters.metadata.year", "64 bits"),
    ],
)
def test_bad_filters_name_the_field(metadata: dict, param: str, words: str) -> None:
    with pytest.raises(BadRequest) as info:
        Filters(metadata=metadata)
    assert info.value.param == param and words in info.value.message
    assert info.value.code == "invalid_filter"
