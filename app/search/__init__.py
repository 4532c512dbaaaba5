"""Search: semantic, keyword and hybrid ranking, snippets, neighbours."""

from app.search.search import Filters, Hit, Neighbor, Page, Searcher, SearchQuery, Signal

__all__ = ["Filters", "Hit", "Neighbor", "Page", "SearchQuery", "Searcher", "Signal"]
