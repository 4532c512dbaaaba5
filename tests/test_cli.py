"""The offline commands: verify, repair, reindex, compact, export and import (the commands that
talk to a server are tested in tests/cli/)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from app.cli.admin import startup_message
from app.settings import Settings, get_settings
from app.store.database import Store


@pytest.fixture
def populated(make_client, settings, monkeypatch):
    """A data dir with one collection of three documents, the app closed again."""
    client = make_client()
    files = [("files", (f"{n}.txt", io.BytesIO(f"note {n} ".encode() * 50))) for n in "abc"]
    client.post("/api/documents?wait=true", files=files)
    client.__exit__(None, None, None)
    monkeypatch.setenv("EMBEDSEARCH_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield settings.data_dir
    get_settings.cache_clear()


def run_cli(*argv: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    return exit_info.value.code


def test_verify_repair_reindex(populated: Path, capsys) -> None:
    assert run_cli("verify") == 0
    assert "default: ok" in capsys.readouterr().out
    index_file = next((populated / "indexes").glob("*.faiss"))
    index_file.write_bytes(b"garbage")
    assert run_cli("verify") == 1
    assert "MISMATCH" in capsys.readouterr().out
    assert run_cli("verify", "--repair") == 0
    assert "rebuilt" in capsys.readouterr().out
    assert run_cli("verify") == 0
    assert run_cli("reindex") == 0
    assert "rebuilt, 3 vectors" in capsys.readouterr().out
    assert run_cli("compact") == 0


def test_export_import_round_trip(populated: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    archive = tmp_path / "backup.tar.gz"
    assert run_cli("export", str(archive)) == 0
    assert "default: 3 documents" in capsys.readouterr().out
    restored = tmp_path / "restored"
    monkeypatch.setenv("EMBEDSEARCH_DATA_DIR", str(restored))
    get_settings.cache_clear()
    assert run_cli("import", str(archive)) == 0
    assert run_cli("verify") == 0
    assert "default: ok" in capsys.readouterr().out
    original, copy = Store(populated / "embedsearch.db"), Store(restored / "embedsearch.db")
    try:
        assert [d.text for d in _texts(original)] == [d.text for d in _texts(copy)]
        assert np.array_equal(original.chunk_vectors(1)[1], copy.chunk_vectors(1)[1])
    finally:
        original.close()
        copy.close()
    assert run_cli("import", str(archive)) == 1  # never over an existing database
    assert "empty data directory" in capsys.readouterr().err


def _texts(store: Store) -> list:
    documents, _ = store.list_documents()
    return [store.get_document(d.id) for d in documents]


def test_import_refuses_a_damaged_archive(tmp_path: Path, monkeypatch, capsys) -> None:
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not an archive")
    monkeypatch.setenv("EMBEDSEARCH_DATA_DIR", str(tmp_path / "d"))
    get_settings.cache_clear()
    assert run_cli("import", str(bad)) == 1
    assert "not an embedsearch export" in capsys.readouterr().err
    get_settings.cache_clear()


def test_startup_message_names_address_embeddings_and_data(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, backend="onnx", _env_file=None)
    local = startup_message(settings, "127.0.0.1", 8123)
    assert local.startswith("embedsearch at http://127.0.0.1:8123 ")
    assert f"model all-MiniLM-L6-v2 on onnx (loading); data in {tmp_path}" in local
    remote = settings.model_copy(update={"embeddings_url": "http://other:8000/v1"})
    assert "at http://[::]:80 " in startup_message(remote, "::", 80)
    assert "embeddings from http://other:8000/v1;" in startup_message(remote, "::", 80)
