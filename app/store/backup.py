"""Export the whole store to one archive, and import it into an empty data directory.

The archive is a tar file holding ``embedsearch.db`` (an online SQLite backup, consistent even
while the server writes) and ``manifest.json`` (what is inside, with the database's SHA-256).
Vector indexes are not exported: they are rebuilt from the stored vectors on import.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import tarfile
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

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


def import_archive(archive: Path, data_dir: Path) -> dict[str, Any]:
    """Restore an exported archive into ``data_dir``, which must hold no database yet."""
    target = data_dir / DB_NAME
    if target.exists():
        raise Conflict(f"{target} already exists: import into an empty data directory.")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            manifest = json.loads(_member(tar, "manifest.json"))
            database = _member(tar, manifest.get("database", DB_NAME))
    except (tarfile.TarError, OSError, json.JSONDecodeError) as exc:
        raise BadRequest(f"{archive} is not an embedsearch export: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise BadRequest(f"Unsupported export format {manifest.get('format')!r}.")
    if hashlib.sha256(database).hexdigest() != manifest["sha256"]:
        raise BadRequest(f"{archive} is damaged: the database does not match its manifest.")
    data_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".importing")
    partial.write_bytes(database)
    partial.replace(target)  # an interrupted import leaves no half-written database behind
    return manifest


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    """The bytes of one regular file in the archive (never extracted to disk by its own name)."""
    member = tar.getmember(name)
    if not member.isfile():
        raise tarfile.TarError(f"{name} is not a regular file")
    extracted = tar.extractfile(member)
    if extracted is None:
        raise tarfile.TarError(f"{name} has no contents")
    return extracted.read()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
