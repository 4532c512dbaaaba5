"""The pages: search, upload, documents, clusters and the similarity playground."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.api.deps import EmbedderDep, IndexesDep, SearcherDep, SettingsDep, StoreDep
from app.errors import AppError, NotFound
from app.ingest.delete import delete_document
from app.search import SearchQuery
from app.search.clusters import check_most_k, cluster_collection, clustering_body
from app.search.query import MAX_RESULTS, MODES
from app.search.similarity import similarity_matrix
from app.store.records import Collection, Document
from app.web.session import keys_required, render, require_sign_in, valid_form
from app.web.views import Pager, curl_command, heat, page_number, segments, whole_number

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_sign_in)])

RESULTS_PER_PAGE = 10
DOCUMENTS_PER_PAGE = 25
SIMILAR_DOCUMENTS = 6
RECENT_DOCUMENTS = 6
EXAMPLE_TEXTS = [
    "The cat sat on the mat.",
    "A kitten is sleeping on the rug.",
    "Stock markets fell sharply today.",
    "Investors sold shares as prices dropped.",
]


def find_collection(collections: list[Collection], name: str) -> Collection | None:
    """The collection called ``name`` among ``collections``, if there is one."""
    return next((c for c in collections if c.name == name), None)


class PageNotFound(Exception):
    """Raised by a page whose subject does not exist; answered with the HTML 404 page."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def not_found(request: Request, message: str) -> HTMLResponse:
    """The HTML 404 page."""
    return render(request, "not_found.html", status=404, message=message)


async def page_not_found(request: Request, exc: PageNotFound) -> HTMLResponse:
    """The answer to PageNotFound."""
    return not_found(request, exc.message)


def page_document(document_id: str, store: StoreDep) -> Document:
    """The document with this id (as typed in a URL, without its text); the HTML 404 if none."""
    number = whole_number(document_id)
    try:
        if number is not None:
            return store.get_document(number, with_text=False)
    except NotFound:
        pass
    raise PageNotFound(f"There is no document {document_id!r}. It may have been deleted.")


PageDocument = Annotated[Document, Depends(page_document)]


@router.get("/", response_class=HTMLResponse)
def search_page(
    request: Request,
    store: StoreDep,
    searcher: SearcherDep,
    q: str = "",
    mode: str = "hybrid",
    collection: str = "default",
    page: str = "1",
    scores: str = "",
) -> HTMLResponse:
    """Search a collection; the URL holds the query, so a search can be shared."""
    collections = store.list_collections()
    current = find_collection(collections, collection)
    mode = mode if mode in MODES else "hybrid"
    number = page_number(page, MAX_RESULTS // RESULTS_PER_PAGE)
    result, error = None, None
    if q.strip() and current is not None and current.documents:
        offset = (number - 1) * RESULTS_PER_PAGE
        try:
            result = searcher.search(collection, SearchQuery(q, mode, RESULTS_PER_PAGE, offset))
        except AppError as exc:
            error = exc.message
    total = result.total if result else 0
    recent = (
        store.list_documents(current.id, limit=RECENT_DOCUMENTS)[0]
        if current and not q.strip()
        else []
    )
    return render(
        request,
        "search.html",
        nav="search",
        q=q,
        mode=mode,
        modes=MODES,
        collection=collection,
        collections=collections,
        current=current,
        result=result,
        error=error,
        scores=bool(scores),
        recent=recent,
        pager=Pager.of(number, total, RESULTS_PER_PAGE, MAX_RESULTS),
    )


@router.get("/upload", response_class=HTMLResponse)
def upload_page(
    request: Request, store: StoreDep, settings: SettingsDep, collection: str = "default"
) -> HTMLResponse:
    """Pick or drop files; each uploads as its own job and shows how it went."""
    return render(
        request,
        "upload.html",
        nav="upload",
        collection=collection,
        collections=store.list_collections(),
        max_bytes=settings.max_upload_bytes,
    )


@router.get("/documents", response_class=HTMLResponse)
def documents_page(
    request: Request,
    store: StoreDep,
    collection: str = "",
    page: str = "1",
    deleted: str = "",
) -> HTMLResponse:
    """Every document (of one collection, or all), newest first, a page at a time."""
    collections = store.list_collections()
    current = find_collection(collections, collection)
    documents: list[Document] = []
    total = 0
    if current is not None or not collection:
        count = current.documents if current else sum(c.documents for c in collections)
        number = page_number(page, Pager.of(1, count, DOCUMENTS_PER_PAGE).pages)
        documents, total = store.list_documents(
            current.id if current else None,
            limit=DOCUMENTS_PER_PAGE,
            offset=(number - 1) * DOCUMENTS_PER_PAGE,
        )
    else:
        number = 1
    names = {c.id: c.name for c in collections}
    return render(
        request,
        "documents.html",
        nav="documents",
        collection=collection,
        collections=collections,
        current=current,
        documents=documents,
        collection_names=names,
        pager=Pager.of(number, total, DOCUMENTS_PER_PAGE),
        deleted=bool(deleted),
    )


@router.get("/documents/{document_id}", response_class=HTMLResponse)
def document_page(
    request: Request, found: PageDocument, store: StoreDep, searcher: SearcherDep
) -> HTMLResponse:
    """A document's text with its chunk boundaries, and the documents most like it."""
    document = store.get_document(found.id)
    chunks = store.get_chunks(document.id)
    try:
        similar, similar_error = searcher.similar_documents(document.id, SIMILAR_DOCUMENTS), None
    except AppError as exc:
        similar, similar_error = [], exc.message
    return render(
        request,
        "document.html",
        nav="documents",
        document=document,
        collection=store.get_collection_by_id(document.collection_id),
        chunks=chunks,
        segments=segments(document.text or "", chunks),
        similar=similar,
        similar_error=similar_error,
    )


@router.get("/documents/{document_id}/delete", response_class=HTMLResponse)
def confirm_delete_page(request: Request, document: PageDocument) -> HTMLResponse:
    """Ask before deleting (the page scripts ask with a dialog instead)."""
    return render(request, "delete.html", nav="documents", document=document)


@router.post("/documents/{document_id}/delete", dependencies=[Depends(valid_form)])
def delete_document_form(document: PageDocument, store: StoreDep, indexes: IndexesDep) -> Response:
    """Delete a document, then go back to the list."""
    delete_document(store, indexes, document.id)
    return RedirectResponse("/documents?deleted=1", status_code=303)


def clusters_view(
    request: Request, store: StoreDep, collection: str, error: str | None = None
) -> HTMLResponse:
    """The clusters page for ``collection``, with an error from a failed run if any."""
    collections = store.list_collections()
    current = find_collection(collections, collection)
    stored = store.get_clustering(current.id) if current else None
    return render(
        request,
        "clusters.html",
        status=400 if error else 200,
        nav="clusters",
        collection=collection,
        collections=collections,
        current=current,
        clustering=clustering_body(current, stored) if current and stored else None,
        error=error,
    )


@router.get("/clusters", response_class=HTMLResponse)
def clusters_page(request: Request, store: StoreDep, collection: str = "default") -> HTMLResponse:
    """A collection's clusters and its 2D map."""
    return clusters_view(request, store, collection)


@router.post("/clusters", dependencies=[Depends(valid_form)])
def run_clustering(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    collection: Annotated[str, Form()] = "default",
    k: Annotated[str, Form()] = "auto",
) -> Response:
    """Cluster a collection (k clusters, or automatic), then show the result."""
    try:
        check_most_k(requested := whole_number(k), settings.max_clusters)
        target = store.get_collection(collection)
        cluster_collection(store, target, requested, ward_max=settings.ward_max_documents)
    except AppError as exc:
        return clusters_view(request, store, collection, exc.message)
    return RedirectResponse(f"/clusters?{urlencode({'collection': collection})}", status_code=303)


@router.get("/playground", response_class=HTMLResponse)
def playground_page(
    request: Request, embedder: EmbedderDep, settings: SettingsDep, texts: str = ""
) -> HTMLResponse:
    """Compare texts: their similarity matrix as a heat map, and the matching curl call."""
    lines = [line.strip() for line in texts.splitlines() if line.strip()]
    matrix, error = None, None
    if lines:
        try:
            matrix = similarity_matrix(embedder, lines).tolist()
        except AppError as exc:
            error = exc.message
    base_url = str(request.base_url).rstrip("/")
    return render(
        request,
        "playground.html",
        nav="playground",
        texts="\n".join(lines or EXAMPLE_TEXTS),
        lines=lines,
        matrix=matrix,
        heat=heat,
        error=error,
        curl=curl_command(base_url, settings.model, lines or EXAMPLE_TEXTS, keys_required(request)),
    )
