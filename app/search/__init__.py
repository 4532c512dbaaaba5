"""Search: semantic, keyword and hybrid ranking, snippets, neighbours."""

from app.search.query import Hit, Neighbor, Page, SearchQuery, Signal
from app.search.search import Searcher
from app.store.filters import Filters

__all__ = ["Filters", "Hit", "Neighbor", "Page", "SearchQuery", "Searcher", "Signal"]
