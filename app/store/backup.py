"""Export the whole store to one archive, and import it into an empty data directory.

The archive is a tar file holding ``embedsearch.db`` (an online SQLite backup, consistent even
while the server writes) and ``manifest.json`` (what is inside, with the database's SHA-256).
Vector indexes are not exported: they are rebuilt from the stored vectors on import.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import tarfile
import tempfile
import zlib
from contextlib import closing
from pathlib import Path
from typing import IO, Any

from app.errors import BadRequest, Conflict
from app.store.database import Store
from app.store.records import now

FORMAT = 1
DB_NAME = "embedsearch.db"


def export_archive(db_path: Path, archive: Path) -> dict[str, Any]:
    """Write a consistent copy of the database and a manifest to ``archive``; return the manifest."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / DB_NAME
        with closing(sqlite3.connect(db_path)) as source, closing(sqlite3.connect(copy)) as target:
            source.backup(target)
        store = Store(copy)
        collections = [
            {
                "name": c.name,
                "model": c.model,
                "dimensions": c.dimensions,
                "documents": c.documents,
                "chunks": c.chunks,
            }
            for c in store.list_collections()
        ]
        store.close()
        manifest = {
            "format": FORMAT,
            "created_at": now(),
            "database": DB_NAME,
            "sha256": _sha256(copy),
            "collections": collections,
        }
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(copy, arcname=DB_NAME)
            data = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return manifest


def import_archive(archive: Path, data_dir: Path, max_bytes: int) -> dict[str, Any]:
    """Restore an exported archive into ``data_dir``, which must hold no database yet.

    Nothing in the data directory changes until the archive's database has passed every check:
    its size (counted while it decompresses), its SHA-256, SQLite's integrity check, and a
    schema exactly as this version creates it (no trigger or view of its own). Then it moves
    into place in one rename.
    """
    target = data_dir / DB_NAME
    if target.exists():
        raise Conflict(f"{target} already exists: import into an empty data directory.")
    with tempfile.TemporaryDirectory(prefix="embedsearch-import-") as tmp:
        staged = Path(tmp) / DB_NAME
        try:
            with tarfile.open(archive, "r:gz") as tar:
                manifest = json.loads(_member(tar, "manifest.json", 1 << 20))
                if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                    raise BadRequest(f"{archive} is not an embedsearch export (format {FORMAT}).")
                _copy_member(tar, DB_NAME, staged, max_bytes)
        except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError) as exc:
            raise BadRequest(f"{archive} is not an embedsearch export: {exc}") from exc
        if _sha256(staged) != manifest.get("sha256"):
            raise BadRequest(f"{archive} is damaged: the database does not match its manifest.")
        _check_database(staged, archive)
        data_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".importing")
        shutil.copyfile(staged, partial)
        partial.replace(target)  # an interrupted import leaves no half-written database behind
    return manifest


def _member(tar: tarfile.TarFile, name: str, max_bytes: int) -> bytes:
    """The bytes of one regular file in the archive, at most ``max_bytes`` of them."""
    extracted = _open_member(tar, name)
    data = extracted.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise tarfile.TarError(f"{name} is larger than {max_bytes:,} bytes")
    return data


def _copy_member(tar: tarfile.TarFile, name: str, to: Path, max_bytes: int) -> None:
    """Write one regular file of the archive to ``to``, stopping past ``max_bytes``."""
    extracted = _open_member(tar, name)
    written = 0
    with to.open("wb") as out:
        for block in iter(lambda: extracted.read(1 << 20), b""):
            written += len(block)
            if written > max_bytes:  # counted as it inflates: a gzip bomb stops here
                raise BadRequest(
                    f"The archive's database is larger than {max_bytes:,} bytes "
                    "(EMBEDSEARCH_MAX_IMPORT_BYTES)."
                )
            out.write(block)


def _open_member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    """One regular file of the archive, never extracted to disk by its own name."""
    member = tar.getmember(name)
    extracted = tar.extractfile(member) if member.isfile() else None
    if extracted is None:
        raise tarfile.TarError(f"{name} is not a regular file")
    return extracted


def _check_database(path: Path, archive: Path) -> None:
    """BadRequest unless ``path`` is a sound SQLite database with exactly our schema."""
    with path.open("rb") as f:
        if f.read(16) != b"SQLite format 3\x00":
            raise BadRequest(f"{archive} does not hold an SQLite database.")
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            problems = [row[0] for row in db.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise BadRequest(f"{archive} holds a damaged database: {problems[0]}.")
            found = set(db.execute(_SCHEMA))
            collections = [row[0] for row in db.execute("SELECT id FROM collections")]
    except sqlite3.DatabaseError as exc:
        raise BadRequest(f"{archive} holds a database that cannot be read: {exc}.") from exc
    expected = _expected_schema(path.parent / "expected.db", collections)
    if found != expected:
        extra = sorted(f"{kind} {name}" for kind, name, _ in found - expected)
        raise BadRequest(
            f"{archive} holds a database whose schema is not this version's"
            + (f" (it adds {', '.join(extra[:5])})" if extra else "")
            + ": export it again with this version of embedsearch."
        )


_SCHEMA = "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"


def _expected_schema(path: Path, collections: list[int]) -> set[tuple[str, str, str]]:
    """The schema this version creates for a database holding these collections."""
    store = Store(path)
    with store.dialect.transaction() as conn:
        for collection_id in collections:
            store.dialect.create_fts(conn, collection_id)
    with store.dialect.read() as conn:
        schema = set(conn.execute(_SCHEMA))
    store.close()
    return schema


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
