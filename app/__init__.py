"""embedsearch: self-hosted semantic search on its own OpenAI-compatible embeddings endpoint."""
