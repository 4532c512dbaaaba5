"""One owner per data directory: a second server, or a command that rewrites it, is refused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app.cli import main
from app.main import create_app
from app.settings import get_settings
from app.store.owner import DataDirInUse, Owner
from tests.support.fakes import FakeEncoder


def test_a_second_owner_is_refused_with_the_holders_pid(tmp_path) -> None:
    first = Owner(tmp_path, "embedsearch serve")
    with pytest.raises(DataDirInUse, match=f"process {os.getpid()} \\(embedsearch serve\\)"):
        Owner(tmp_path, "embedsearch reindex")
    first.release()
    Owner(tmp_path, "embedsearch reindex").release()  # free again once released


def test_a_second_app_on_the_same_directory_refuses_to_start(make_client, settings) -> None:
    client = make_client()
    with pytest.raises(DataDirInUse, match="EMBEDSEARCH_DATA_DIR"):
        create_app(settings, load=lambda spec: FakeEncoder())
    client.__exit__(None, None, None)  # the first one stops: its directory is free
    make_client()


def test_serve_refuses_a_directory_in_use(make_client, settings) -> None:
    make_client()
    env = {**os.environ, "EMBEDSEARCH_DATA_DIR": str(settings.data_dir)}
    command = [sys.executable, "-m", "app", "serve", "--port", "1"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert f"in use by process {os.getpid()} (embedsearch serve)" in done.stderr
    assert "Traceback" not in done.stderr


def run_cli(*argv: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    return exit_info.value.code


def test_writing_commands_respect_the_owner(make_client, settings, monkeypatch, capsys) -> None:
    make_client()
    monkeypatch.setenv("EMBEDSEARCH_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    for argv in (["reindex"], ["verify", "--repair"], ["import", "any.tar.gz"]):
        assert run_cli(*argv) == 1, argv
        assert "is in use by process" in capsys.readouterr().err
    assert run_cli("verify") == 0  # reading is fine beside a server
    get_settings.cache_clear()
