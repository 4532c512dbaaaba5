"""Documents in and out: uploads (multipart files or JSON records), jobs, listings, deletes."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, model_validator
from starlette.datastructures import UploadFile

from app.api.auth import require_key
from app.api.deps import SQLITE_MAX_INT, DocumentId, IndexesDep, SettingsDep, StoreDep
from app.api.filters import parse_filters
from app.errors import AppError, BadRequest, Unprocessable, UnsupportedMediaType
from app.ingest.delete import delete_document as remove_document
from app.ingest.extract import RecordLimits, extract, json_record
from app.ingest.sandbox import SandboxLimits, extract_sandboxed, sandboxed
from app.ingest.sources import Source
from app.ingest.synced import check_path, tag_documents
from app.ingest.worker import JobWorker
from app.jsonvalues import bounded
from app.settings import Settings
from app.store.database import Store
from app.store.records import Document, Job

router = APIRouter(dependencies=[Depends(require_key)], tags=["documents"])
Body = TypeVar("Body", bound=BaseModel)

COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class DocumentIn(BaseModel):
    """One document given as JSON."""

    model_config = ConfigDict(extra="ignore")

    text: StrictStr = Field(min_length=1, description="The document's text.")
    title: StrictStr | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    external_id: StrictStr | None = Field(None, description="Your id; re-sending it replaces.")


class DocumentsIn(BaseModel):
    """A JSON upload: many documents, or one given at the top level."""

    collection: StrictStr = "default"
    documents: list[DocumentIn] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _one_document(cls, value: Any) -> Any:
        if isinstance(value, dict) and "documents" not in value and "text" in value:
            return {"collection": value.get("collection", "default"), "documents": [value]}
        return value


async def get_worker(request: Request) -> JobWorker:
    """The app's ingestion job worker."""
    return request.app.state.worker


WorkerDep = Annotated[JobWorker, Depends(get_worker)]


def check_collection_name(name: str) -> str:
    """A collection name is 1-64 letters, digits, '_', '.' or '-', starting alphanumeric."""
    if not COLLECTION_NAME.match(name):
        raise BadRequest(
            f"Invalid collection name {name!r}: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit.",
            param="collection",
        )
    return name


def job_json(job: Job) -> dict[str, Any]:
    """A job as the API shows it."""
    result = job.result or {}
    return {
        "id": job.id,
        "object": "ingestion.job",
        "collection": job.collection,
        "state": job.state,
        "worker": job.worker,
        "attempts": job.attempts,
        "progress": {"done": job.done, "total": job.total},
        "error": job.error,
        "documents": [i for f in result.get("files", []) for i in f["documents"]],
        "result": job.result,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
    }


def document_json(document: Document) -> dict[str, Any]:
    """A document's metadata (and text, when loaded) as the API shows it."""
    body = {"object": "document", **document.__dict__}
    if body["text"] is None:
        del body["text"]
    return body


async def _sources_from_form(
    request: Request, settings: Settings
) -> tuple[str, list[tuple[Source, AppError | None]]]:
    limits = RecordLimits.of(settings)
    sandbox = SandboxLimits.of(settings)
    max_files = settings.max_files_per_upload
    # Each file may come with its path (field 'paths', in the files' order): a field per file.
    async with request.form(max_files=max_files, max_fields=max_files + 100) as form:
        uploads = [
            f for f in [*form.getlist("files"), *form.getlist("file")] if isinstance(f, UploadFile)
        ]
        if not uploads:
            raise BadRequest("Attach at least one file as form field 'files'.", param="files")
        collection = form.get("collection") or "default"
        if not isinstance(collection, str):
            raise BadRequest("'collection' must be a text field.", param="collection")
        paths = _paths(form.getlist("paths"), len(uploads))
        sources: list[tuple[Source, AppError | None]] = []
        for upload, path in zip(uploads, paths, strict=True):
            name, data = upload.filename or "upload", await upload.read()
            try:
                if sandboxed(name):
                    documents = await extract_sandboxed(
                        name, data, sandbox, request.is_disconnected
                    )
                else:
                    documents = await asyncio.to_thread(extract, name, data)
                for number, document in enumerate(documents, 1):
                    where = name if len(documents) == 1 else f"{name} record {number}"
                    limits.check(document, where)
            except AppError as error:  # it fails alone, so the rest of a batch can go in
                sources.append((Source(name, error=error.message, path=path), error))
                continue
            if path is not None:
                tag_documents(documents, path, data)
            sources.append((Source(name, documents, path=path), None))
    return collection, sources


def _paths(values: list[Any], files: int) -> list[str | None]:
    """The files' paths in a synced folder, one per file, or none at all."""
    if not values:
        return [None] * files
    if len(values) != files or not all(isinstance(v, str) for v in values):
        raise BadRequest(
            f"Give one text field 'paths' per file, in the files' order ({files} files, "
            f"{len(values)} paths), or none.",
            param="paths",
        )
    return [check_path(v) for v in values]


def _sources_from_json(
    body: DocumentsIn, limits: RecordLimits
) -> list[tuple[Source, AppError | None]]:
    documents = []
    for i, record in enumerate(body.documents):
        documents.append(document := json_record(record.model_dump(), f"documents[{i}]"))
        limits.check(document, f"documents[{i}]")
    return [(Source("request.json", documents), None)]


async def _read_json(request: Request) -> DocumentsIn:
    return await _read_model(request, DocumentsIn)


async def _read_model(request: Request, model: type[Body]) -> Body:
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        if first["type"] == "json_invalid":
            raise BadRequest("The body is not valid JSON.") from None
        raise BadRequest(f"Invalid value for '{where}': {first['msg']}.", param=where) from None


async def _finished(store: Store, job: Job) -> Job:
    """The job once it has ended: whichever replica runs it, the database says when."""
    while not await asyncio.to_thread(store.job_ended, job.id):
        await asyncio.sleep(0.05)
    return await asyncio.to_thread(store.get_job, job.id)


@router.post("/api/documents", status_code=202)
async def create_documents(
    request: Request,
    worker: WorkerDep,
    store: StoreDep,
    wait: Annotated[bool, Query(description="Answer only when the job has finished.")] = False,
) -> JSONResponse:
    """Upload documents: multipart files (field `files`) or JSON records; runs as a job."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        collection, extracted = await _sources_from_form(request, request.app.state.settings)
    elif "json" in content_type:
        body = await _read_json(request)
        limits = RecordLimits.of(request.app.state.settings)
        collection, extracted = body.collection, _sources_from_json(body, limits)
    else:
        raise UnsupportedMediaType(
            "Upload files as multipart/form-data (field 'files') or send JSON records with "
            "'Content-Type: application/json'."
        )
    check_collection_name(collection)
    sources = [source for source, _ in extracted]
    failures = [failure for _, failure in extracted if failure is not None]
    if len(failures) == len(sources):  # nothing to ingest: answer with the reason now
        if len(failures) == 1:
            raise failures[0]
        reasons = "; ".join(f"{s.name}: {s.error}" for s in sources)
        raise Unprocessable(f"None of the files could be read. {reasons}")
    job = await asyncio.to_thread(worker.submit, collection, sources)
    if wait:
        return JSONResponse(job_json(await _finished(store, job)), status_code=200)
    return JSONResponse(job_json(job), status_code=202)


@router.get("/api/jobs/{job_id}")
def get_job(job_id: str, store: StoreDep) -> dict[str, Any]:
    """An ingestion job's state and progress."""
    return job_json(store.get_job(job_id))


@router.get("/api/documents")
def list_documents(
    store: StoreDep,
    settings: SettingsDep,
    collection: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=SQLITE_MAX_INT)] = 0,
    filters: Annotated[
        str | None,
        Query(
            description='JSON, as in POST /api/search: e.g. `{"metadata": {"year": {"$gte": 2020}}}`'
        ),
    ] = None,
) -> dict[str, Any]:
    """Documents, newest first, optionally of one collection and passing a filter."""
    collection_id = store.get_collection(collection).id if collection else None
    documents, total = store.list_documents(
        collection_id, limit=limit, offset=offset, filters=parse_filters(filters)
    )
    # Cut short past the response size limit: the client pages on from offset + len(data).
    data = bounded([document_json(d) for d in documents], settings.max_response_bytes)
    return {
        "object": "list",
        "data": data,
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get("/api/documents/{document_id}")
def get_document(document_id: DocumentId, store: StoreDep) -> dict[str, Any]:
    """A document with its text and its chunks (with character offsets)."""
    document = store.get_document(document_id)
    chunks = [
        {k: v for k, v in c.__dict__.items() if k not in ("document_id", "collection_id")}
        for c in store.get_chunks(document_id)
    ]
    return {**document_json(document), "chunks": chunks}


@router.delete("/api/documents/{document_id}")
def delete_document(
    document_id: DocumentId, store: StoreDep, indexes: IndexesDep
) -> dict[str, Any]:
    """Delete a document, its chunks and their vectors."""
    remove_document(store, indexes, document_id)
    return {"id": document_id, "object": "document", "deleted": True}


ExternalId = Annotated[str, Path(min_length=1, max_length=1024, description="Your document id.")]
Collection = Annotated[str, Query(description="The collection the document is in.")]


@router.get("/api/documents/external/{external_id:path}")
def get_external(
    external_id: ExternalId, store: StoreDep, collection: Collection = "default"
) -> dict[str, Any]:
    """The document with this external id, with its text and chunks."""
    document = store.find_external(store.get_collection(collection).id, external_id)
    return get_document(document.id, store)


@router.put("/api/documents/external/{external_id:path}")
async def put_external(
    external_id: ExternalId,
    request: Request,
    worker: WorkerDep,
    store: StoreDep,
    collection: Collection = "default",
) -> dict[str, Any]:
    """Create or replace the document with this external id; answers when it is stored."""
    check_collection_name(collection)
    body = await _read_model(request, DocumentIn)
    record = json_record({**body.model_dump(), "external_id": external_id}, "body")
    RecordLimits.of(request.app.state.settings).check(record, "body")
    job = await asyncio.to_thread(worker.submit, collection, [Source("request.json", [record])])
    job = await _finished(store, job)
    if job.state == "failed":
        raise Unprocessable(job.error or "The document could not be stored.")
    found = store.find_external(store.get_collection(collection).id, external_id)
    return {**get_document(found.id, store), "job": job_json(job)}


@router.delete("/api/documents/external/{external_id:path}")
def delete_external(
    external_id: ExternalId,
    store: StoreDep,
    indexes: IndexesDep,
    collection: Collection = "default",
) -> dict[str, Any]:
    """Delete the document with this external id, its chunks and their vectors."""
    document = store.find_external(store.get_collection(collection).id, external_id)
    remove_document(store, indexes, document.id)
    return {"id": document.id, "external_id": external_id, "object": "document", "deleted": True}


@router.get("/api/collections")
def list_collections(store: StoreDep) -> dict[str, Any]:
    """Collections with their model and document and chunk counts."""
    return {"object": "list", "data": [c.__dict__ for c in store.list_collections()]}
