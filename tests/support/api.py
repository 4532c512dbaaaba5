"""Helpers for API tests: the test API key and the check for the API's error shape."""

from __future__ import annotations

from fastapi.testclient import TestClient
from httpx import Response

API_KEY = "test-key-123"


def assert_error(response: Response, status: int, param: str | None = None) -> dict:
    """The response is an error in the API's (OpenAI's) shape with this status (and param)."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    return error


def ingest(client: TestClient, documents: list[dict], collection: str = "default") -> None:
    """Add documents through the API and wait until the job is done."""
    response = client.post(
        "/api/documents",
        params={"wait": "true"},
        json={"collection": collection, "documents": documents},
    )
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "done"
