"""Page fixtures: each index backend in turn, and headless Debian Chromium (never downloaded)
driving real servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.settings import Settings
from tests.support.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CORPUS,
    DESKTOP,
    UPLOAD_LIMIT,
    Tab,
    ingest,
)
from tests.support.server import running_server


@pytest.fixture
def settings(backend_settings: Settings) -> Settings:
    """The page tests run on each index backend: FAISS, then Qdrant (embedded, local mode)."""
    return backend_settings


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """One headless Chromium for the session."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server (real model, no keys) holding the corpus; yields its URL."""
    env = {"EMBEDSEARCH_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT)}
    with running_server(tmp_path_factory.mktemp("web"), env) as (url, _, _):
        ingest(url, CORPUS)
        yield url


@pytest.fixture
def tab(browser, server: str) -> Iterator[Tab]:  # noqa: ANN001
    """A fresh desktop-sized tab on the server; fails the test on any console error."""
    context = browser.new_context(viewport=DESKTOP)
    tab = Tab(context.new_page(), server)
    yield tab
    context.close()
    assert tab.errors == [], tab.errors
