"""What a client keeping a folder in sync needs: the server's limits, the files a collection
holds (path and hash), and deleting files by path in one request."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field, StrictStr

from app.api.auth import require_key
from app.api.deps import IndexesDep, SettingsDep, StoreDep
from app.ingest.extract import FILE_TYPES
from app.ingest.synced import delete_files, list_files

router = APIRouter(dependencies=[Depends(require_key)], tags=["sync"])

CollectionName = Annotated[str, Path(description="A collection name.")]


class PathsIn(BaseModel):
    """Files to delete, by their path in the synced folder."""

    paths: list[StrictStr] = Field(min_length=1, description="Paths as uploaded (field 'paths').")


@router.get("/api/limits")
def get_limits(settings: SettingsDep) -> dict[str, Any]:
    """The server's limits on requests and uploads, so clients can size their batches, and the
    file name endings it reads."""
    limits = {name: value for name, value in settings if name.startswith("max_")}
    return {"object": "limits", **limits, "file_types": list(FILE_TYPES)}


@router.get("/api/collections/{name}/files")
def list_collection_files(name: CollectionName, store: StoreDep) -> dict[str, Any]:
    """The files the collection holds that were uploaded with a path: path, SHA-256, documents."""
    return {"object": "list", "collection": name, "data": list_files(store, name)}


@router.post("/api/collections/{name}/files/delete")
def delete_collection_files(
    name: CollectionName, body: PathsIn, store: StoreDep, indexes: IndexesDep
) -> dict[str, Any]:
    """Delete the documents of these files (paths the collection does not hold are ignored)."""
    deleted = delete_files(store, indexes, name, body.paths)
    return {"object": "files.deleted", "collection": name, "deleted": deleted}
