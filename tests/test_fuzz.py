"""Fuzz the whole HTTP API from its OpenAPI schema: no 500s, every error in the API's shape.

The app (with the fake encoder) runs under uvicorn on 127.0.0.1 in a thread, and schemathesis
sends it what the schema allows and much that it does not.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import httpx
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings

from app.main import create_app
from app.settings import Settings
from tests.support.fakes import FakeEncoder
from tests.support.server import free_port

_tmp = tempfile.TemporaryDirectory()
app = create_app(
    Settings(data_dir=Path(_tmp.name), _env_file=None), load=lambda spec: FakeEncoder()
)
schema = schemathesis.openapi.from_dict(app.openapi())
server = uvicorn.Server(
    uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
)
base_url = f"http://127.0.0.1:{server.config.port}"
thread = threading.Thread(target=server.run, daemon=True)


def setup_module() -> None:
    """Serve the app, wait until it is ready, and give it a document to find."""
    thread.start()
    for _ in range(200):
        if server.started and app.state.engine.ready.is_set():
            break
        time.sleep(0.05)
    httpx.post(f"{base_url}/api/documents?wait=true", json={"text": "a document about fuzzing"})


def teardown_module() -> None:
    server.should_exit = True
    thread.join(30)
    _tmp.cleanup()


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:
    response = case.call(base_url=base_url, timeout=30)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["message"]
