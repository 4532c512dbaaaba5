"""Retrievers for LangChain and LlamaIndex over embedsearch's search API (optional extras)."""
