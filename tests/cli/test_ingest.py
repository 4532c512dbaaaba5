"""``embedsearch ingest`` against a real server: a folder of many files in a few uploads, the
progress a pipe sees, the summary and the table of failures; packing under the server's limits."""

from __future__ import annotations

import argparse
from pathlib import Path

import httpx
from rich.console import Console

from app.cli.client import Limits, Server
from app.cli.display import Display, Outcome
from app.cli.upload import LocalFile, Uploader, pack
from app.settings import Settings


def notes_folder(root: Path, n: int) -> Path:
    folder = root / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / ".obsidian").mkdir()
    for i in range(n):
        (folder / ("sub" if i % 3 else "") / f"note{i}.txt").write_text(f"Note {i}: word{i} here.")
    (folder / ".obsidian" / "workspace.json").write_text("{}")  # hidden: not sent
    (folder / "picture.png").write_bytes(b"\x89PNG")  # a type the server does not read: skipped
    (folder / "broken.pdf").write_bytes(b"not a pdf at all")
    return folder


def test_folder_of_many_files(serve, cli, tmp_path: Path) -> None:
    served = serve(max_files_per_upload=25)
    folder = notes_folder(tmp_path, 120)
    result = cli("ingest", str(folder), "--url", served.url, "--collection", "notes")
    assert result.returncode == 1, result.stderr  # one file failed
    assert (
        "121 files" in result.stdout
        and "120 added" in result.stdout
        and "1 failed" in result.stdout
    )
    assert "broken.pdf" in result.stdout and "not a readable PDF" in result.stdout
    # No terminal: plain progress lines, and no library log lines among them.
    assert "files 121/121" in result.stderr and "chunks 120/120" in result.stderr
    assert "HTTP Request" not in result.stderr
    listing = httpx.get(f"{served.url}/api/documents", params={"collection": "notes"}).json()
    assert listing["total"] == 120

    def jobs_run() -> int:
        return served.app.state.store.db.execute("SELECT count(*) FROM jobs").fetchone()[0]

    assert jobs_run() == 5  # 121 files in uploads of at most 25

    again = cli("ingest", str(folder), "--url", served.url, "--collection", "notes", "-v")
    assert "120 unchanged" in again.stdout
    assert jobs_run() == 5  # only broken.pdf went again (refused at once): the rest are held
    assert "HTTP Request" in again.stderr  # --verbose shows the library's log lines


def test_files_too_large_fail_alone(serve, cli, tmp_path: Path) -> None:
    served = serve(max_upload_bytes=20_000)
    (tmp_path / "small.txt").write_text("a small note")
    (tmp_path / "big.txt").write_text("word " * 10_000)
    result = cli("ingest", str(tmp_path), "--url", served.url)
    assert result.returncode == 1
    assert "1 added" in result.stdout and "big.txt" in result.stdout
    assert "too large" in result.stdout and "EMBEDSEARCH_MAX_UPLOAD_BYTES" in result.stdout


def test_pack_keeps_under_the_limits(tmp_path: Path) -> None:
    limits = Limits(max_files=3, max_bytes=10_000, max_request_bytes=1000, file_types=(".txt",))
    files = [
        LocalFile(tmp_path / f"{i}.txt", f"{i}.txt", size)
        for i, size in enumerate([100, 100, 100, 100, 3000, 3000, 3000, 20_000, 100])
    ]
    batches, too_large = pack(files, limits)
    assert [f.name for f in too_large] == ["7.txt"]
    assert [[f.name for f in b] for b in batches] == [
        ["0.txt", "1.txt", "2.txt"],
        ["3.txt", "4.txt"],
        ["5.txt"],
        ["6.txt", "8.txt"],
    ]


def test_unreadable_file_fails_alone(serve, tmp_path: Path) -> None:
    served = serve()
    (tmp_path / "ok.txt").write_text("a readable note")
    files = [
        LocalFile(tmp_path / "ok.txt", "ok.txt", 15),
        LocalFile(tmp_path / "gone.txt", "gone.txt", 10),  # deleted since the folder was read
    ]
    outcome = Outcome()
    args = argparse.Namespace(url=served.url, key=None)
    with Server(Settings(_env_file=None), args) as server, Display(Console(), 2) as display:
        Uploader(server, server.limits(), "default", display, outcome).send(files)
    assert outcome.counts["added"] == 1
    assert outcome.failures == [("gone.txt", "cannot read it: No such file or directory")]
