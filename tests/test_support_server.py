"""The test servers' readiness wait: a model still loading gets longer than a stalled server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support import server


class Alive:
    """Stands in for the server's process: it never exits."""

    def poll(self) -> None:
        return None


@contextmanager
def health(answers: list[tuple[int, str]]) -> Iterator[str]:
    """A /health that gives ``answers`` (status code, status) in turn, the last one for good."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            code, status = answers.pop(0) if len(answers) > 1 else answers[0]
            body = json.dumps({"status": status}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_server_loading_its_model_gets_past_the_timeout(tmp_path: Path) -> None:
    answers = [(503, "loading")] * 8 + [(200, "ok")]  # ~1.6 s of loading, against 0.5 s
    with health(answers) as url:
        start = time.monotonic()
        server.wait_ready(url, Alive(), tmp_path / "log", timeout=0.5)  # type: ignore[arg-type]
    assert time.monotonic() - start > 0.5


def test_a_server_that_is_not_loading_fails_at_the_timeout(tmp_path: Path) -> None:
    (tmp_path / "log").write_text("the server's log")
    with (
        health([(503, "error")]) as url,
        pytest.raises(RuntimeError, match=r"(?s)after 0s.*the server's log"),
    ):
        server.wait_ready(url, Alive(), tmp_path / "log", timeout=0.3)  # type: ignore[arg-type]
