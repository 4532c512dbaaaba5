"""Throwaway PostgreSQL databases for tests, on the server at EMBEDSEARCH_TEST_POSTGRES
(default: 127.0.0.1:5432, user postgres, as on CI); tests skip with the reason when none answers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import pytest

from app.store.database import Store

SERVER = os.environ.get("EMBEDSEARCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


@cache
def unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here, or None when they can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    try:
        with psycopg.connect(f"{SERVER}/postgres", connect_timeout=3):
            return None
    except psycopg.OperationalError as exc:
        return f"no PostgreSQL answers at {SERVER}: {str(exc).strip()[:200]}"


def require_postgres() -> None:
    """Skip the calling test, saying why, unless PostgreSQL answers."""
    if reason := unavailable():
        pytest.skip(reason)


@contextmanager
def temporary_database() -> Iterator[str]:
    """The URL of a new empty database, dropped afterwards (with whatever still uses it)."""
    import psycopg

    require_postgres()
    name = f"embedsearch_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{SERVER}/{name}"
    finally:
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def empty_postgres(store: Store) -> None:
    """Delete every row of a PostgreSQL store and restart its ids (much faster than a new
    database per test)."""
    tables = [
        row[0]
        for row in store._tuples(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'schema_migrations'"
        )
    ]
    with store._transaction() as conn:
        conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
