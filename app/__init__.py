"""embedsearch: self-hosted semantic search on its own OpenAI-compatible embeddings endpoint."""

import os

# Idle OpenMP threads (torch, FAISS) spin by default, taking the cores the event loop, SQLite
# and the other model thread need: with anything else running, a query's embedding took 263 ms
# instead of 19. OpenMP reads this once, when torch is first imported, so it is set here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The tokenizers library tokenises a batch on a pool of its own threads, which spin while they
# wait: on a server whose cores run the model, that is 0.1-0.2 ms of wasted CPU per request.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
