"""SciFact nDCG@10 with the store on PostgreSQL (keyword search: tsvector + ts_rank) next to
SQLite (FTS5 BM25), per search mode, in one run.

SciFact is embedded once, by a SQLite server; its documents, chunks and vectors are then copied
into a throwaway PostgreSQL database (EMBEDSEARCH_TEST_POSTGRES, default 127.0.0.1:5432), so both
servers answer from identical vectors and only the database differs. ``--workdir DIR`` keeps the
SQLite server's data in DIR/postgres-sqlite, so a later run skips embedding.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx

from bench import ingest
from bench.runner import Row
from bench.scifact import MODES, evaluate, ingested, read_jsonl, read_qrels, subset
from tests.support.datasets import dataset
from tests.support.postgres import temporary_database, unavailable
from tests.support.server import running_server

ENV = {"EMBEDSEARCH_BACKEND": "onnx-int8"}
SUBSET_DOCS = 0  # 0: the whole corpus; n: the judged documents, then others up to n


def copy_store(source: Path, url: str) -> int:
    """Copy every collection, document, chunk and vector of a SQLite store into the database
    at ``url``; returns how many documents."""
    from app.store.database import Store

    sqlite, target = Store(source), Store(url, pool_size=2)
    copied = 0
    for collection in sqlite.list_collections():
        into = target.ensure_collection(
            collection.name, collection.model, collection.dimensions, collection.backend
        )
        ids, vectors = sqlite.chunk_vectors(collection.id)
        row = {int(i): n for n, i in enumerate(ids)}
        documents, _ = sqlite.list_documents(collection.id, limit=10**9)
        for document in sorted(documents, key=lambda d: d.id):
            full = sqlite.get_document(document.id)
            chunks = sqlite.get_chunks(document.id)
            fields = {k: v for k, v in full.__dict__.items() if k not in ("id", "collection_id")}
            records = [_record(c) for c in chunks]
            target.add_document(into.id, fields, records, vectors[[row[c.id] for c in chunks]])
            copied += 1
    sqlite.close()
    target.close()
    return copied


def _record(chunk):  # noqa: ANN001, ANN202 - app.store.records types
    from app.store.records import ChunkRecord

    return ChunkRecord(
        chunk.seq, chunk.text, chunk.start, chunk.end, chunk.token_count, chunk.section
    )


def run(quick: bool = False, workdir: Path | None = None, subset_docs: int = SUBSET_DOCS) -> dict:
    """nDCG@10 and recall@100 per mode on SciFact's test queries, SQLite and PostgreSQL, over
    ``subset_docs`` documents (0: the whole corpus, about 4 minutes of embedding on 2 quiet
    cores)."""
    if reason := unavailable():
        return {"skipped": reason}
    corpus = ingest.records()
    data = dataset("scifact")
    queries = {q["_id"]: q["text"] for q in read_jsonl(data / "queries.jsonl")}
    test = read_qrels(data / "qrels/test.tsv")
    if quick:
        corpus, test = subset(corpus, test)
    elif subset_docs:
        judged = {doc for relevant in test.values() for doc in relevant}
        corpus = [d for d in corpus if d["_id"] in judged] + [
            d for d in corpus if d["_id"] not in judged
        ][: max(0, subset_docs - len(judged))]
    out: dict = {"documents": len(corpus), "queries": len(test), "databases": {}}
    with tempfile.TemporaryDirectory() as tmp, temporary_database() as url:
        root = Path(tmp)
        kept = workdir / f"postgres-sqlite{'-quick' if quick else ''}" if workdir else None
        homes = {"sqlite": kept or root / "sqlite"}
        homes["postgresql"] = root / "postgresql"
        for name, env in (("sqlite", ENV), ("postgresql", ENV | {"EMBEDSEARCH_DATABASE_URL": url})):
            homes[name].mkdir(parents=True, exist_ok=True)
            if name == "postgresql":
                out["copied"] = copy_store(homes["sqlite"] / "data" / "embedsearch.db", url)
            with (
                running_server(homes[name], env, timeout=900) as (base, proc, _),
                httpx.Client(base_url=base, timeout=120) as client,
            ):
                if name == "sqlite" and not ingested(client, len(corpus)):
                    out["ingest"] = ingest.end_to_end(base, proc.pid, corpus, homes[name] / "data")
                out["databases"][name] = {
                    mode: evaluate(client, queries, test, mode) for mode in MODES
                }
    return out


def rows(result: dict) -> list[Row]:
    """Each mode's nDCG@10 on both databases, and PostgreSQL's less SQLite's."""
    if "skipped" in result:
        return [Row(f"PostgreSQL keyword search: skipped ({result['skipped']})", None, "")]
    n = result["documents"]
    scope = "" if n > 5000 else f" [{n}-doc subset]"
    out = []
    for mode in MODES:
        sqlite, pg = (result["databases"][db][mode]["ndcg@10"] for db in ("sqlite", "postgresql"))
        out += [
            Row(f"SciFact {mode} nDCG@10, SQLite (FTS5 BM25){scope}", sqlite, "", digits=3),
            Row(f"SciFact {mode} nDCG@10, PostgreSQL (ts_rank){scope}", pg, "", digits=3),
            Row(f"SciFact {mode} nDCG@10, PostgreSQL - SQLite{scope}", pg - sqlite, "", digits=3),
        ]
    return out
