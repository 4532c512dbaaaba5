"""Versioned schema migrations, run at start-up on SQLite and PostgreSQL alike.

Each migration is SQL shared by both databases (column types that differ are named
``{serial}``, ``{blob}`` and ``{float}`` and filled in by the dialect) plus the dialect's own
steps. ``schema_migrations`` records which have run; every replica starting at once runs them
under one lock, so each runs exactly once. Add a migration at the end; never edit one that
has shipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.store.dialect import Dialect
from app.store.records import now


@dataclass(frozen=True)
class Migration:
    """One schema change: its version, what it does, and its shared SQL statements."""

    version: int
    name: str
    sql: str = ""

    def statements(self, dialect: Dialect) -> list[str]:
        """The shared statements with this database's column types filled in."""
        script = self.sql.format(**dialect.types)
        return [s.strip() for s in script.split(";\n") if s.strip()]


# IF NOT EXISTS: a SQLite file from before migrations existed already holds this schema.
BASE = """
CREATE TABLE IF NOT EXISTS collections (
    id {serial},
    name TEXT NOT NULL UNIQUE,
    model TEXT NOT NULL,
    dimensions INTEGER NOT NULL CHECK (dimensions > 0),
    backend TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    id {serial},
    collection_id BIGINT NOT NULL REFERENCES collections (id),
    title TEXT NOT NULL,
    source_name TEXT NOT NULL,
    source_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    content_hash TEXT NOT NULL,
    external_id TEXT,
    metadata TEXT NOT NULL DEFAULT '{{}}',
    text TEXT NOT NULL,
    chunk_count INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_hash ON documents (collection_id, content_hash);
CREATE INDEX IF NOT EXISTS documents_external ON documents (collection_id, external_id);
CREATE INDEX IF NOT EXISTS documents_source ON documents (collection_id, source_name);
-- Covers the document and chunk counts of a collection, read on every search.
CREATE INDEX IF NOT EXISTS documents_counts ON documents (collection_id, chunk_count);
CREATE TABLE IF NOT EXISTS chunks (
    id {serial},
    document_id BIGINT NOT NULL REFERENCES documents (id),
    collection_id BIGINT NOT NULL REFERENCES collections (id),
    seq INTEGER NOT NULL,
    text TEXT NOT NULL,
    section TEXT,
    "start" INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    token_count INTEGER NOT NULL,
    vector {blob} NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks (document_id, seq);
CREATE INDEX IF NOT EXISTS chunks_collection ON chunks (collection_id);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    collection TEXT NOT NULL,
    state TEXT NOT NULL,
    total INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    result TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
-- Clusters and maps (app.search.clusters, app.search.projection): the latest result per
-- collection, stamped with the collection version it was computed from.
CREATE TABLE IF NOT EXISTS clusterings (
    collection_id BIGINT PRIMARY KEY REFERENCES collections (id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    result TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS document_clusters (
    document_id BIGINT PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
    collection_id BIGINT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    cluster INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS document_clusters_collection
    ON document_clusters (collection_id, cluster);
CREATE TABLE IF NOT EXISTS document_maps (
    collection_id BIGINT PRIMARY KEY REFERENCES collections (id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    method TEXT NOT NULL,
    document_ids {blob} NOT NULL,
    coordinates {blob} NOT NULL
)
"""

# Jobs carry what they ingest and who runs them, so any replica can claim one and another can
# finish it; chunks carry the collection version that wrote them, and removed chunk ids are
# kept a while, so an index catches up by the versions it missed instead of a full comparison.
REPLICAS = """
ALTER TABLE jobs ADD COLUMN payload TEXT;
ALTER TABLE jobs ADD COLUMN worker TEXT;
ALTER TABLE jobs ADD COLUMN lease_until {float};
ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, created_at);
ALTER TABLE chunks ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS chunks_version ON chunks (collection_id, version);
ALTER TABLE collections ADD COLUMN removals_from BIGINT NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS chunk_removals (
    collection_id BIGINT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    chunk_id BIGINT NOT NULL,
    version BIGINT NOT NULL,
    removed_at {float} NOT NULL
);
CREATE INDEX IF NOT EXISTS chunk_removals_version ON chunk_removals (collection_id, version)
"""

# Counted from documents once; from then on kept by each write, in its own transaction.
COUNTS = """
ALTER TABLE collections ADD COLUMN documents BIGINT NOT NULL DEFAULT 0;
ALTER TABLE collections ADD COLUMN chunks BIGINT NOT NULL DEFAULT 0;
UPDATE collections SET
    documents = (SELECT count(*) FROM documents d WHERE d.collection_id = collections.id),
    chunks = (SELECT coalesce(sum(d.chunk_count), 0) FROM documents d
        WHERE d.collection_id = collections.id)
"""

# A job's payload holds every document it ingests (megabytes for a large upload). In the jobs row,
# each progress write rewrote it (SQLite rewrites a whole row on any update) and each poll of the
# job read past it: ingesting 2,000 SciFact documents spent ~2% of the server's CPU there.
PAYLOADS = """
CREATE TABLE IF NOT EXISTS job_payloads (
    job_id TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    payload TEXT NOT NULL
);
INSERT INTO job_payloads (job_id, payload) SELECT id, payload FROM jobs WHERE payload IS NOT NULL;
ALTER TABLE jobs DROP COLUMN payload
"""

MIGRATIONS = (
    Migration(1, "base schema", BASE),
    Migration(2, "one full-text table per collection (SQLite)"),
    Migration(
        3, "jobs any replica can run; chunk versions and removals for index following", REPLICAS
    ),
    Migration(4, "document and chunk counts kept on each collection", COUNTS),
    Migration(5, "job payloads in a table of their own", PAYLOADS),
)


def migrate(dialect: Dialect) -> list[int]:
    """Run every migration this database has not had yet; returns their versions."""
    with dialect.transaction() as conn:
        dialect.lock(conn, "embedsearch schema")  # replicas starting at once queue here
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        ran = []
        for migration in MIGRATIONS:
            if migration.version in applied:
                continue
            for statement in migration.statements(dialect):
                conn.execute(statement)
            dialect.migrate(conn, migration.version)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                [migration.version, migration.name, now()],
            )
            ran.append(migration.version)
    return ran


def schema_version(dialect: Dialect) -> int:
    """The newest migration this database has had (0 before any)."""
    with dialect.read() as conn:
        row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)
