"""The running server as the command line sees it: where it is, its key, its limits, and errors
turned into one line a person can act on."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import httpx

from app.settings import Settings

TIMEOUT = 600.0  # seconds; an upload of a large batch can take a while to be read and extracted


class CliError(Exception):
    """Stops a command with a message saying what to do; exit status 2."""


@dataclass(frozen=True)
class Limits:
    """What the server accepts in one upload."""

    max_files: int
    max_bytes: int
    max_request_bytes: int
    file_types: tuple[str, ...]


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """The options every command talking to a server takes."""
    parser.add_argument("--url", help="Server URL (default: from EMBEDSEARCH_HOST and _PORT).")
    parser.add_argument("--key", help="API key (default: the first of EMBEDSEARCH_API_KEYS).")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="Show HTTP requests and library logs."
    )


class Server:
    """An HTTP client for one server; every failure becomes a CliError with a next step."""

    def __init__(self, settings: Settings, args: argparse.Namespace) -> None:
        self.url = (args.url or f"http://{settings.host}:{settings.port}").rstrip("/")
        key = args.key or (settings.api_keys[0] if settings.api_keys else None)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; a response of any status comes back, a failed connection raises."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise CliError(
                f"No server at {self.url}: start one with `embedsearch serve`, or pass --url."
            ) from None
        except httpx.TimeoutException:
            raise CliError(f"The server at {self.url} did not answer in time; try again.") from None
        except httpx.HTTPError as exc:
            raise CliError(f"Talking to {self.url} failed: {exc}") from None
        if response.status_code == 401:
            raise CliError(
                f"The server at {self.url} refused the API key: pass --key KEY or set "
                "EMBEDSEARCH_API_KEYS to one of the server's keys."
            )
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A successful response's JSON; any error response raises with the server's message."""
        response = self.call(method, path, **kwargs)
        if response.status_code >= 400:
            raise CliError(error_message(response))
        return response.json()

    def limits(self) -> Limits:
        """The server's upload limits and the file types it reads."""
        body = self.json("GET", "/api/limits")
        return Limits(
            body["max_files_per_upload"],
            body["max_upload_bytes"],
            body["max_request_bytes"],
            tuple(body["file_types"]),
        )


def error_message(response: httpx.Response) -> str:
    """The server's error message, or the status line if the body is no API error."""
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"The server answered {response.status_code} {response.reason_phrase}."
