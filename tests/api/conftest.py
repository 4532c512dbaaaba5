"""The API tests run on each index backend: FAISS, then Qdrant (embedded, local mode)."""

from __future__ import annotations

import pytest

from app.settings import Settings


@pytest.fixture
def settings(backend_settings: Settings) -> Settings:
    return backend_settings
