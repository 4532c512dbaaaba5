"""Import checks an archive fully before the data directory changes; each bad one gets a reason."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sqlite3
import tarfile
from pathlib import Path

import numpy as np
import pytest

from app.errors import BadRequest
from app.store.backup import DB_NAME, export_archive, import_archive
from app.store.database import Store
from app.store.records import ChunkRecord

LIMIT = 1 << 30


def exported(tmp_path: Path) -> Path:
    """A real export of a store with one collection and one document."""
    path = tmp_path / "source.db"
    store = Store(path)
    collection = store.ensure_collection("notes", "m", 4, "torch")
    fields = {
        "title": "t",
        "source_name": "a.txt",
        "source_type": "txt",
        "size": 5,
        "content_hash": "0" * 64,
        "text": "hello",
    }
    vector = np.ones((1, 4), np.float32) / 2
    store.add_document(collection.id, fields, [ChunkRecord(0, "hello", 0, 5, 1)], vector)
    store.close()
    archive = tmp_path / "good.tar.gz"
    export_archive(path, archive)
    return archive


def repack(archive: Path, change, to: Path) -> Path:
    """The archive with its database changed by ``change(path)`` and the checksum redone."""
    work = to.parent / "work.db"
    with tarfile.open(archive, "r:gz") as tar:
        work.write_bytes(tar.extractfile(DB_NAME).read())
        manifest = json.loads(tar.extractfile("manifest.json").read())
    change(work)
    data = work.read_bytes()
    manifest["sha256"] = hashlib.sha256(data).hexdigest()
    return pack(to, {DB_NAME: data, "manifest.json": json.dumps(manifest).encode()})


def pack(to: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(to, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return to


def sql(statement: str):
    def change(path: Path) -> None:
        db = sqlite3.connect(path)
        db.execute(statement)
        db.commit()
        db.close()  # checkpoints the write-ahead log into the file

    return change


def refused(archive: Path, data_dir: Path, match: str, limit: int = LIMIT) -> None:
    with pytest.raises(BadRequest, match=match):
        import_archive(archive, data_dir, limit)
    assert not (data_dir / DB_NAME).exists()
    assert not list(data_dir.glob("*.importing")) if data_dir.exists() else True


def test_a_trigger_or_view_of_the_archives_own_is_refused(tmp_path: Path) -> None:
    good = exported(tmp_path)
    trigger = sql(
        "CREATE TRIGGER pwn AFTER INSERT ON documents BEGIN "
        "UPDATE documents SET title = 'PWNED-BY-TRIGGER'; END"
    )
    refused(repack(good, trigger, tmp_path / "t.tar.gz"), tmp_path / "d", "trigger pwn")
    view = sql("CREATE VIEW extra AS SELECT 1")
    refused(repack(good, view, tmp_path / "v.tar.gz"), tmp_path / "d", "view extra")
    altered = sql("ALTER TABLE documents ADD COLUMN sneaky TEXT")
    refused(repack(good, altered, tmp_path / "a.tar.gz"), tmp_path / "d", "schema")
    assert import_archive(good, tmp_path / "d", LIMIT)["format"] == 1  # then a good one goes in


def test_a_file_that_is_not_sqlite_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    good = exported(tmp_path)

    def garbage(path: Path) -> None:
        path.write_bytes(b"this is not a database" * 100)

    refused(repack(good, garbage, tmp_path / "g.tar.gz"), tmp_path / "d", "SQLite")
    import_archive(good, tmp_path / "d", LIMIT)


def test_a_damaged_page_with_a_recomputed_checksum_is_refused(tmp_path: Path) -> None:
    good = exported(tmp_path)

    def damage(path: Path) -> None:
        data = bytearray(path.read_bytes())
        page = 4096
        for offset in range(page + 8, len(data), page):  # every page's cell area after the first
            data[offset : offset + 64] = b"\xff" * 64
        path.write_bytes(bytes(data))

    refused(repack(good, damage, tmp_path / "x.tar.gz"), tmp_path / "d", "damaged|cannot be read")


def test_a_gzip_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    manifest = json.dumps({"format": 1, "sha256": "0" * 64, "collections": []}).encode()
    bomb = pack(tmp_path / "bomb.tar.gz", {"manifest.json": manifest, DB_NAME: b"\0" * 5_000_000})
    assert bomb.stat().st_size < 100_000
    refused(bomb, tmp_path / "d", "EMBEDSEARCH_MAX_IMPORT_BYTES", limit=1_000_000)


@pytest.mark.parametrize(
    "data",
    [b"", b"not an archive", gzip.compress(b"not a tar"), b"\x1f\x8b\x08\x00truncated"],
)
def test_malformed_archives_get_one_clear_message(tmp_path: Path, data: bytes) -> None:
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(data)
    refused(archive, tmp_path / "d", "not an embedsearch export")


def test_a_truncated_export_is_refused(tmp_path: Path) -> None:
    good = exported(tmp_path)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    refused(cut, tmp_path / "d", "not an embedsearch export|damaged")
