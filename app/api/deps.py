"""Dependency aliases for route functions: the app's settings, engine, store and indexes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.embeddings.engine import Engine
from app.settings import Settings
from app.store.database import Store
from app.store.indexes import Indexes


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    """The app's embeddings engine."""
    return request.app.state.engine


def get_store(request: Request) -> Store:
    """The app's SQLite store."""
    return request.app.state.store


def get_indexes(request: Request) -> Indexes:
    """The app's vector indexes."""
    return request.app.state.indexes


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
StoreDep = Annotated[Store, Depends(get_store)]
IndexesDep = Annotated[Indexes, Depends(get_indexes)]
