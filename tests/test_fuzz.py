"""Fuzz the whole HTTP API from its OpenAPI schema: no 500s, every error in the API's shape.

Two apps (with the fake encoder) run under uvicorn on 127.0.0.1 in threads: one open, one with
an API key that the fuzzer presents as a browser would, in the sign-in cookie from the app's own
origin. schemathesis sends each what the schema allows and much that it does not.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings

from app.api.auth import COOKIE
from app.main import create_app
from app.settings import Settings
from tests.support.fakes import FakeEncoder
from tests.support.server import free_port

KEY = "fuzz-key"
_tmp = tempfile.TemporaryDirectory()


class Served:
    """One app under uvicorn in a daemon thread."""

    def __init__(self, name: str, **overrides: object) -> None:
        settings = Settings(data_dir=Path(_tmp.name) / name, _env_file=None, **overrides)
        self.app = create_app(settings, load=lambda spec: FakeEncoder())
        config = uvicorn.Config(self.app, host="127.0.0.1", port=free_port(), log_level="warning")
        self.server = uvicorn.Server(config)
        self.url = f"http://127.0.0.1:{config.port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, headers: dict[str, str]) -> None:
        """Serve, wait until ready, and store a document to find."""
        self.thread.start()
        for _ in range(200):
            if self.server.started and self.app.state.engine.ready.is_set():
                break
            time.sleep(0.05)
        response = httpx.post(
            f"{self.url}/api/documents?wait=true",
            json={"text": "a document about fuzzing"},
            headers=headers,
        )
        response.raise_for_status()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


open_app = Served("open")
keyed_app = Served("keyed", api_keys=[KEY])
schema = schemathesis.openapi.from_dict(open_app.app.openapi())
# What a signed-in browser on the app's own page sends with every request.
COOKIE_HEADERS = {
    "Cookie": f"{COOKIE}={KEY}",
    "Origin": keyed_app.url,
    "Sec-Fetch-Site": "same-origin",
}


def setup_module() -> None:
    open_app.start({})
    keyed_app.start(COOKIE_HEADERS)


def teardown_module() -> None:
    open_app.stop()
    keyed_app.stop()
    _tmp.cleanup()


def check(response: Any, case: schemathesis.Case) -> None:
    """No server error; an error answers in the API's one shape, with a message."""
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["message"]


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:
    check(case.call(base_url=open_app.url, timeout=30), case)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_signed_in_with_the_cookie(case: schemathesis.Case) -> None:
    response = case.call(base_url=keyed_app.url, headers=COOKIE_HEADERS, timeout=30)
    check(response, case)
    if response.status_code == 401:  # the cookie is the key: only a route's own checks refuse
        pytest.fail(f"{case.method} {case.formatted_path} refused the signed-in cookie")
