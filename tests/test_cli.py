"""The command line: ingest against a real server; verify, repair, reindex and compact offline."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from app.cli.admin import startup_message
from app.settings import Settings, get_settings
from app.store.database import Store
from tests.support.api import API_KEY


@pytest.mark.model
def test_ingest_folder_prints_summary(live_server, tmp_path: Path) -> None:
    url, _ = live_server
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text("# Alpha\n\nThe first note is about alpine lakes.\n")
    (folder / "sub" / "b.txt").write_text("The second note is about deserts.\n")
    (folder / "sub" / "c.pdf").write_bytes(b"not a pdf at all")
    command = [
        sys.executable,
        "-m",
        "app",
        "ingest",
        str(folder),
        "--url",
        url,
        "--key",
        API_KEY,
        "--collection",
        "cli",
    ]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert "added 2, unchanged duplicates 0, replaced 0, failed 1" in first.stdout, first.stderr
    assert "c.pdf" in first.stdout and first.returncode == 1
    (folder / "sub" / "c.pdf").unlink()
    (folder / "sub" / "b.txt").write_text("The second note is now about oceans.\n")
    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert "added 0, unchanged duplicates 1, replaced 1, failed 0" in second.stdout, second.stderr
    assert second.returncode == 0


def test_ingest_without_server_says_how_to_start_one(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    command = [sys.executable, "-m", "app", "ingest", str(tmp_path), "--url", "http://127.0.0.1:9"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "embedsearch serve" in result.stderr


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
