"""What a search asks and answers: the query, its limits and checks, hits, pages, neighbours."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import NamedTuple

from app.errors import BadRequest
from app.settings import Settings
from app.store.filters import Filters
from app.store.keywords import WORDS
from app.store.records import Chunk, Document

MODES = ("hybrid", "semantic", "keyword")
GROUPS = ("document", "chunk")
MAX_RESULTS = 1000  # offset + k may not pass this


class Signal(NamedTuple):
    """Where one ranking put a hit: 1-based rank and its score (a tuple: a search makes one
    for every candidate, and a frozen dataclass costs several times as much to build)."""

    rank: int
    score: float


@dataclass(frozen=True)
class QueryLimits:
    """How much work one query may ask for; past a limit it is refused, naming the setting."""

    max_words: int
    max_bytes: int
    max_filter_keys: int

    @classmethod
    def of(cls, settings: Settings) -> QueryLimits:
        """The limits these settings set."""
        return cls(settings.max_query_words, settings.max_query_bytes, settings.max_filter_keys)

    def check(self, text: str, filters: Filters | None = None, param: str = "query") -> None:
        """BadRequest if the query text or its filter is over a limit."""
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > self.max_bytes:
            raise BadRequest(
                f"The query is {size:,} bytes, more than the limit of {self.max_bytes:,} "
                "(EMBEDSEARCH_MAX_QUERY_BYTES): shorten it.",
                param=param,
            )
        if (words := len(WORDS.findall(text))) > self.max_words:
            raise BadRequest(
                f"The query has {words:,} words, more than the limit of {self.max_words} "
                "(EMBEDSEARCH_MAX_QUERY_WORDS): shorten it.",
                param=param,
            )
        if filters and len(filters.conditions) > self.max_filter_keys:
            raise BadRequest(
                f"The filter tests {len(filters.conditions)} metadata conditions, more than the limit "
                f"of {self.max_filter_keys} (EMBEDSEARCH_MAX_FILTER_KEYS).",
                param="filters.metadata",
            )


@dataclass(frozen=True)
class SearchQuery:
    """What to search for (words, or a vector the caller already has) and how."""

    text: str | None
    mode: str = "hybrid"
    k: int = 10
    offset: int = 0
    group_by: str = "document"
    filters: Filters = field(default_factory=Filters)
    vector: list[float] | None = None
    min_score: float | None = None  # least cosine similarity a hit's chunk may have


@dataclass(frozen=True)
class Hit:
    """One result: a document (or chunk), its best chunk, and why it ranks where it does."""

    rank: int
    score: float
    document: Document
    chunk: Chunk
    snippet: str
    semantic: Signal | None
    keyword: Signal | None
    fused: float | None
    similarity: float | None  # the chunk's raw cosine to the query (None in keyword mode)
    keyword_weight: float | None = None  # what keyword scores counted in the fusion (hybrid)


@dataclass(frozen=True)
class Page:
    """One page of hits and how many hits the whole ranking holds."""

    hits: list[Hit]
    total: int
    message: str | None = None


@dataclass(frozen=True)
class Neighbor:
    """A stored chunk (or document, through its best chunk) near a vector."""

    score: float
    document: Document
    chunk: Chunk


def check_k(k: int, offset: int = 0, limit: int = MAX_RESULTS) -> None:
    """BadRequest unless 1 <= k and 0 <= offset and offset + k <= limit."""
    if k < 1:
        raise BadRequest(f"'k' must be at least 1, got {k}.", param="k")
    if offset < 0:
        raise BadRequest(f"'offset' must be at least 0, got {offset}.", param="offset")
    if offset + k > limit:
        raise BadRequest(
            f"'offset' + 'k' may be at most {limit} (got {offset} + {k}); "
            "narrow the query or add filters instead of paging further.",
            param="k" if offset == 0 else "offset",
        )


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """BadRequest unless ``value`` is one of ``choices``."""
    if value not in choices:
        allowed = ", ".join(f"'{choice}'" for choice in choices)
        raise BadRequest(f"'{name}' must be one of {allowed}; got {value!r}.", param=name)


def check_query(query: SearchQuery) -> SearchQuery:
    """The query checked; a search by vector runs in semantic mode (there are no words)."""
    check_choice("mode", query.mode, MODES)
    check_choice("group_by", query.group_by, GROUPS)
    check_k(query.k, query.offset)
    if (query.text is None) == (query.vector is None):
        raise BadRequest("Send exactly one of 'query' (words) and 'vector'.", param="query")
    if query.text is not None and not query.text.strip():
        raise BadRequest("'query' is empty: send some words to search for.", param="query")
    if query.min_score is not None:
        if query.mode == "keyword":
            raise BadRequest(
                "'min_score' cuts on cosine similarity, which keyword mode does not compute: "
                "use mode 'semantic' or 'hybrid'.",
                param="min_score",
            )
        if not -1 <= query.min_score <= 1:
            raise BadRequest(
                f"'min_score' is a cosine similarity, from -1 to 1; got {query.min_score}.",
                param="min_score",
            )
    if query.vector is None:
        return query
    if query.mode == "keyword":
        raise BadRequest(
            "A 'vector' cannot be searched by keyword: use mode 'semantic' (or send 'query').",
            param="mode",
        )
    return replace(query, mode="semantic")
