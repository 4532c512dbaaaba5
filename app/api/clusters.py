"""Routes for document clusters (POST/GET /api/clusters) and the 2D document map (/api/map)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from app.api.auth import require_key
from app.api.deps import SettingsDep, StoreDep
from app.errors import BadRequest, NotFound
from app.search.clusters import check_most_k, cluster_collection, clustering_body
from app.search.projection import document_map

router = APIRouter(dependencies=[Depends(require_key)], tags=["clusters"])

CollectionQuery = Query("default", description="The collection's name.")


class ClusterRequest(BaseModel):
    """What to cluster: a collection, into k clusters or an automatically chosen number."""

    model_config = ConfigDict(extra="forbid")

    collection: StrictStr = Field("default", description="The collection's name.")
    k: StrictInt | StrictStr | None = Field(
        None,
        description='Number of clusters (2 to the number of documents), or "auto" (the '
        "default): the k with the best silhouette among a few candidates up to about "
        "2·sqrt(documents/2), at most 50.",
    )
    seed: StrictInt = Field(
        0, ge=0, description="Seed for k-means (0 or more); the same seed repeats a result."
    )


def requested_k(k: int | str | None) -> int | None:
    """The k asked for, or None for automatic; BadRequest for anything else."""
    if k is None or k == "auto":
        return None
    if isinstance(k, int):
        return k
    raise BadRequest(
        f"'k' must be an integer of at least 2 or \"auto\"; got {k!r}.",
        param="k",
    )


@router.post("/api/clusters")
def create_clusters(
    store: StoreDep, settings: SettingsDep, body: ClusterRequest | None = None
) -> dict[str, Any]:
    """Cluster a collection's documents; the result replaces its previous clustering."""
    body = body or ClusterRequest()
    k = requested_k(body.k)
    check_most_k(k, settings.max_clusters)
    collection = store.get_collection(body.collection)
    stored = cluster_collection(
        store, collection, k, body.seed, ward_max=settings.ward_max_documents
    )
    return clustering_body(collection, stored)


@router.get("/api/clusters")
def get_clusters(store: StoreDep, collection: str = CollectionQuery) -> dict[str, Any]:
    """The collection's latest clustering, with a stale flag if documents changed since."""
    found = store.get_collection(collection)
    stored = store.get_clustering(found.id)
    if stored is None:
        raise NotFound(
            f"Collection '{collection}' has not been clustered yet. Cluster it with "
            "POST /api/clusters.",
            param="collection",
        )
    return clustering_body(found, stored)


@router.get("/api/map")
def get_map(
    store: StoreDep, settings: SettingsDep, collection: str = CollectionQuery
) -> dict[str, Any]:
    """2D coordinates of every document (t-SNE), with its title and cluster, for a scatter map.

    ``state`` is "pending" while a large collection's t-SNE map is computed in the background:
    the points are then PCA's; ask again for the finished map.
    """
    found = store.get_collection(collection)
    result = document_map(store, found, settings.map_background_documents)
    stored_map = result.map
    titles = store.document_titles(found.id)
    clusters = store.document_clusters(found.id)
    clustering = store.get_clustering(found.id)
    points = [
        {
            "id": i,
            "title": titles.get(i, ""),
            "x": round(x, 5),
            "y": round(y, 5),
            "cluster": clusters.get(i),
        }
        for i, (x, y) in zip(
            stored_map.document_ids.tolist(), stored_map.coordinates.tolist(), strict=True
        )
    ]
    return {
        "object": "map",
        "collection": found.name,
        "method": stored_map.method,
        "state": "pending" if result.pending else "ready",
        "version": stored_map.version,
        "clustered": clustering is not None,
        "clusters_stale": clustering is not None and clustering.version != found.version,
        "clusters": []
        if clustering is None
        else [
            {"id": c["id"], "label": c["label"], "size": c["size"]}
            for c in clustering.result["clusters"]
        ],
        "points": points,
    }
