"""The index interface: one vector index per collection, and the backend that keeps them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from app.store.records import Collection

if TYPE_CHECKING:
    from app.store.filters import Filters

Ranking = list[tuple[int, float]]  # (chunk id, score), best first


class IndexLost(Exception):
    """A collection's index that is missing, truncated or not one of ours (rebuilt from SQLite)."""

    def __init__(self, message: str, state: str = "unreadable") -> None:
        super().__init__(message)
        self.state = state  # "missing" or "unreadable"


class VectorIndex(Protocol):
    """One collection's vectors under explicit int64 chunk ids, searched by cosine similarity."""

    dimensions: int
    version: int | None  # the collection version this index reflects, recorded on save

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (or replace) the vectors under these ids."""
        ...

    def remove(self, ids: np.ndarray) -> int:
        """Remove these ids; returns how many were present."""
        ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best (scores, ids) per query, best first; id -1 where there are fewer than k."""
        ...

    def ids(self) -> np.ndarray:
        """Every id in the index."""
        ...

    def __len__(self) -> int:
        """How many vectors the index holds."""
        ...


class Backend(Protocol):
    """Where a kind of index lives: how one is opened, created empty and saved."""

    name: str

    def open(self, collection: Collection) -> VectorIndex:
        """The collection's saved index; IndexLost if it is missing or unusable."""
        ...

    def create(self, collection: Collection) -> VectorIndex:
        """A new empty index for the collection, replacing any saved one once it is saved."""
        ...

    def snapshot(self, index: VectorIndex) -> VectorIndex:
        """What ``save`` may write while ``index`` goes on changing: a copy of it, or the index
        itself where saving only reads its version."""
        ...

    def save(self, collection: Collection, index: VectorIndex) -> None:
        """Make the index (and its version) durable."""
        ...

    def close(self) -> None:
        """Release connections and locks."""
        ...

    def describe(self, collection_id: int) -> str:
        """Where the collection's index lives, for messages."""
        ...


@runtime_checkable
class RanksText(Protocol):
    """A backend that also ranks chunk text, so a search takes both candidate lists from it."""

    def candidates(
        self,
        index: Any,
        vector: np.ndarray | None,
        text: str | None,
        filters: Filters,
        depth: int,
    ) -> tuple[Ranking, Ranking]:
        """The ``depth`` best semantic and keyword matches in ``index`` under ``filters``."""
        ...


@dataclass(frozen=True)
class Report:
    """How a collection's index compared with SQLite, and what was done about it.

    ``state`` is "ok" (opened or already in memory), "missing" or "unreadable";
    ``missing`` counts chunk ids the index lacks, ``extra`` ids SQLite no longer has;
    ``action`` is "none", "updated" or "rebuilt".
    """

    collection_id: int
    state: str
    index_version: int | None
    store_version: int
    missing: int
    extra: int
    action: str = "none"

    @property
    def ok(self) -> bool:
        """Whether the index matched SQLite exactly."""
        return (
            self.state == "ok"
            and self.index_version == self.store_version
            and not self.missing
            and not self.extra
        )
