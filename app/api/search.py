"""Routes for search (being written)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.api.auth import require_key

router = APIRouter(dependencies=[Depends(require_key)], tags=["search"])
