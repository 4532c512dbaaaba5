"""Files uploaded with their path: replaced by path, listed with their hash, deleted by path;
the server's limits for clients (in-process, fake encoder)."""

from __future__ import annotations

import hashlib
import io
import json

import pytest

from tests.support.api import assert_error


def upload(client, files: dict[str, bytes], collection: str = "notes"):
    parts = [("files", (path.rsplit("/", 1)[-1], io.BytesIO(data))) for path, data in files.items()]
    return client.post(
        "/api/documents?wait=true",
        files=parts,
        data={"collection": collection, "paths": list(files)},
    )


def files_of(client, collection: str = "notes") -> dict[str, str]:
    response = client.get(f"/api/collections/{collection}/files")
    assert response.status_code == 200, response.text
    return {f["path"]: f["sha256"] for f in response.json()["data"]}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_path_is_the_identity_of_a_file(client) -> None:
    a, b = b"Notes about alpine lakes.", b"Notes about deserts."
    job = upload(client, {"a.txt": a, "sub/a.txt": b, "same.txt": a}).json()
    assert job["result"]["added"] == 3  # same text at two paths: two documents
    assert files_of(client) == {"a.txt": sha(a), "sub/a.txt": sha(b), "same.txt": sha(a)}
    [doc_id] = [f["documents"][0] for f in job["result"]["files"] if f["path"] == "sub/a.txt"]
    doc = client.get(f"/api/documents/{doc_id}").json()
    assert doc["external_id"] == "sub/a.txt"
    assert doc["metadata"] == {"path": "sub/a.txt", "file_sha256": sha(b)}

    again = upload(client, {"a.txt": a, "sub/a.txt": b"Notes about oceans."}).json()
    assert (again["result"]["duplicate"], again["result"]["replaced"]) == (1, 1)
    assert again["documents"] == [doc_id]  # replaced in place: same id
    assert files_of(client)["sub/a.txt"] == sha(b"Notes about oceans.")


def test_fewer_records_leave_no_leftovers(client) -> None:
    def lines(n: int) -> bytes:
        return "\n".join(json.dumps({"text": f"record {i}"}) for i in range(n)).encode()

    assert upload(client, {"r.jsonl": lines(3)}).json()["result"]["added"] == 3
    job = upload(client, {"r.jsonl": lines(1)}).json()
    assert job["result"]["replaced"] == 1  # record 1 keeps its id "r.jsonl#1"
    listing = client.get("/api/collections/notes/files").json()["data"]
    assert len(listing) == 1 and len(listing[0]["documents"]) == 1
    assert client.get("/api/documents?collection=notes").json()["total"] == 1


def test_delete_files_in_one_request(client) -> None:
    upload(client, {f"n{i}.txt": f"note {i}".encode() for i in range(5)})
    response = client.post(
        "/api/collections/notes/files/delete", json={"paths": ["n1.txt", "n3.txt", "gone.txt"]}
    )
    assert response.json()["deleted"] == 2
    assert set(files_of(client)) == {"n0.txt", "n2.txt", "n4.txt"}
    store, indexes = client.app.state.store, client.app.state.indexes
    assert indexes.check(store.get_collection("notes").id).ok
    hits = client.post("/api/search", json={"query": "note 1", "collection": "notes"}).json()
    assert all(h["document"]["external_id"] != "n1.txt" for h in hits["hits"])


def test_a_failed_file_keeps_its_documents(client) -> None:
    upload(client, {"doc.md": b"# Kept\n\nThis stays."})
    job = upload(client, {"doc.md": b"", "other.txt": b"fine"}).json()
    assert job["result"]["failed"] == 1
    assert set(files_of(client)) == {"doc.md", "other.txt"}


@pytest.mark.parametrize(
    "path", ["/abs.txt", "../up.txt", "a/../b.txt", "a\\b.txt", "./a.txt", "a//b.txt"]
)
def test_bad_paths_are_refused(client, path: str) -> None:
    assert_error(upload(client, {path: b"text"}), 400, "paths")
    assert client.get("/api/documents").json()["total"] == 0


def test_paths_must_match_files(client) -> None:
    parts = [("files", ("a.txt", io.BytesIO(b"a"))), ("files", ("b.txt", io.BytesIO(b"b")))]
    response = client.post("/api/documents", files=parts, data={"paths": ["a.txt"]})
    assert_error(response, 400, "paths")


def test_unknown_collection_has_no_files(client) -> None:
    assert_error(client.get("/api/collections/nope/files"), 404)


def test_limits_are_the_settings(make_client) -> None:
    client = make_client(max_files_per_upload=7, max_upload_bytes=1234)
    limits = client.get("/api/limits").json()
    assert (limits["max_files_per_upload"], limits["max_upload_bytes"]) == (7, 1234)
    assert limits["max_request_bytes"] > 0 and ".md" in limits["file_types"]
