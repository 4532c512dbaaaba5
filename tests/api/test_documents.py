"""Uploads, jobs, listings, duplicates, replacement and deletes, in-process (fake encoder)."""

from __future__ import annotations

import io
import json
import time

import pytest

from tests.support.api import assert_error

MD = b"# Cats\n\nCats purr when they are content.\n\n## Food\n\nCats eat fish and mice.\n"


def upload(client, *files: tuple[str, bytes], collection: str = "default", wait: bool = True):
    parts = [("files", (name, io.BytesIO(data))) for name, data in files]
    return client.post(
        "/api/documents",
        params={"wait": str(wait).lower()},
        files=parts,
        data={"collection": collection},
    )


def test_upload_markdown_and_read_it_back(client) -> None:
    r = upload(client, ("cats.md", MD))
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["state"] == "done" and job["result"]["added"] == 1
    assert job["progress"]["done"] == job["progress"]["total"] > 0
    [doc_id] = job["documents"]
    doc = client.get(f"/api/documents/{doc_id}").json()
    assert doc["title"] == "Cats" and doc["source_type"] == "md" and doc["text"] == MD.decode()
    for chunk in doc["chunks"]:
        assert doc["text"][chunk["start"] : chunk["end"]] == chunk["text"]
    assert any(c["section"] == "Cats > Food" for c in doc["chunks"])
    listing = client.get("/api/documents", params={"collection": "default"}).json()
    assert listing["total"] == 1 and listing["data"][0]["id"] == doc_id
    collections = client.get("/api/collections").json()["data"]
    assert collections[0]["name"] == "default" and collections[0]["documents"] == 1


def test_async_job_can_be_polled(client) -> None:
    r = upload(client, ("a.txt", b"some plain text"), wait=False)
    assert r.status_code == 202
    job_id = r.json()["id"]
    for _ in range(200):  # up to 10 s: the job runs on threads of its own, on a busy machine too
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            break
        time.sleep(0.05)
    assert job["state"] == "done" and len(job["documents"]) == 1


def test_duplicate_and_replace(client) -> None:
    first = upload(client, ("notes.txt", b"version one")).json()
    again = upload(client, ("notes.txt", b"version one")).json()
    assert again["result"]["files"][0]["status"] == "duplicate"
    replaced = upload(client, ("notes.txt", b"version two")).json()
    assert replaced["result"]["files"][0]["status"] == "replaced"
    assert replaced["documents"] == first["documents"]
    doc = client.get(f"/api/documents/{first['documents'][0]}").json()
    assert doc["text"] == "version two"
    assert client.get("/api/documents").json()["total"] == 1
    store, indexes = client.app.state.store, client.app.state.indexes
    collection = store.get_collection("default")
    assert len(indexes.check(collection.id).__dict__) and indexes.check(collection.id).ok


def test_json_records_and_external_id_replace(client) -> None:
    body = {
        "collection": "notes",
        "documents": [
            {"title": "One", "text": "first record", "external_id": "r1", "metadata": {"n": 1}},
            {"text": "second record", "external_id": "r2"},
        ],
    }
    job = client.post("/api/documents?wait=true", json=body).json()
    assert job["result"]["added"] == 2
    body["documents"][0]["text"] = "first record, edited"
    job = client.post("/api/documents?wait=true", json=body).json()
    assert job["result"]["replaced"] == 1 and job["result"]["duplicate"] == 1
    single = client.post("/api/documents?wait=true", json={"text": "lone record"}).json()
    assert single["result"]["added"] == 1


def test_jsonl_bulk_upload(client) -> None:
    lines = "\n".join(
        json.dumps({"_id": str(i), "title": f"T{i}", "text": f"text {i}"}) for i in range(20)
    )
    job = upload(client, ("corpus.jsonl", lines.encode())).json()
    assert job["result"]["added"] == 20


def test_one_bad_file_fails_alone(client) -> None:
    job = upload(client, ("good.txt", b"good text"), ("bad.pdf", b"not a pdf")).json()
    files = {f["name"]: f for f in job["result"]["files"]}
    assert files["good.txt"]["status"] == "added"
    assert files["bad.pdf"]["status"] == "failed" and files["bad.pdf"]["error"]
    assert job["result"]["failed"] == 1


def test_a_file_of_invisible_characters_is_reported_failed(client) -> None:
    job = upload(client, ("blank.txt", "\u200b\u200c\u200d\n\u200b".encode())).json()
    assert job["state"] == "done"
    [file] = job["result"]["files"]
    assert (file["status"], file["failed"], job["result"]["failed"]) == ("failed", 1, 1)
    assert "no text to index" in file["error"]
    assert client.get("/api/documents").json()["total"] == 0


@pytest.mark.parametrize(
    ("name", "data", "status"),
    [("x.exe", b"MZ", 415), ("empty.txt", b"", 422), ("bad.pdf", b"%PDF-garbage", 422)],
)
def test_bad_files_leave_nothing(client, name: str, data: bytes, status: int) -> None:
    r = upload(client, (name, data))
    assert r.status_code == status
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert client.get("/api/documents").json()["total"] == 0


def test_upload_over_limit_is_413(make_client) -> None:
    client = make_client(max_upload_bytes=1000)
    r = upload(client, ("big.txt", b"x " * 5000))
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert client.get("/api/documents").json()["total"] == 0


def test_path_like_names_are_labels_only(client) -> None:
    job = upload(client, ("../../etc/passwd.txt", b"not really a password file")).json()
    doc = client.get(f"/api/documents/{job['documents'][0]}").json()
    assert doc["title"] == "passwd"


def test_bad_requests(client) -> None:
    assert (
        client.post(
            "/api/documents", content=b"x", headers={"content-type": "text/plain"}
        ).status_code
        == 415
    )
    assert client.post("/api/documents", json={"documents": []}).status_code == 400
    assert client.post("/api/documents", json={"text": ""}).status_code == 400
    assert (
        client.post("/api/documents", json={"text": "x", "collection": "../x"}).status_code == 400
    )
    assert client.get("/api/documents/999").status_code == 404
    assert client.get("/api/jobs/nope").status_code == 404
    assert client.get("/api/documents", params={"limit": 0}).status_code == 400
    assert client.get("/api/documents", params={"collection": "nope"}).status_code == 404


def test_delete_removes_vectors(client) -> None:
    job = upload(client, ("a.txt", b"alpha"), ("b.txt", b"beta")).json()
    first = job["documents"][0]
    assert client.delete(f"/api/documents/{first}").json()["deleted"] is True
    assert client.get(f"/api/documents/{first}").status_code == 404
    assert client.delete(f"/api/documents/{first}").status_code == 404
    store, indexes = client.app.state.store, client.app.state.indexes
    collection = store.get_collection("default")
    assert indexes.check(collection.id).ok
    assert len(indexes._get(collection.id)) == collection.chunks


def test_documents_by_external_id(client) -> None:
    path = "/api/documents/external/doc%2F1"  # any characters, a slash too
    created = client.put(path, json={"text": "First version.", "metadata": {"v": 1}})
    assert created.status_code == 200, created.text
    document = created.json()
    assert document["external_id"] == "doc/1" and document["text"] == "First version."
    assert document["job"]["state"] == "done"
    assert client.get(path).json()["id"] == document["id"]
    replaced = client.put(path, json={"text": "Second version.", "metadata": {"v": 2}}).json()
    assert replaced["text"] == "Second version." and replaced["metadata"] == {"v": 2}
    assert replaced["id"] == document["id"]  # replaced in place
    assert client.get("/api/documents").json()["total"] == 1
    other = client.put(path, params={"collection": "other"}, json={"text": "Elsewhere."})
    assert other.json()["collection_id"] != replaced["collection_id"]
    deleted = client.delete(path)
    assert deleted.json() == {
        "id": replaced["id"],
        "external_id": "doc/1",
        "object": "document",
        "deleted": True,
    }
    assert_error(client.get(path), 404, "external_id")
    assert_error(client.delete(path), 404, "external_id")
    assert client.get(path, params={"collection": "other"}).status_code == 200


def test_external_id_bad_input(client) -> None:
    path = "/api/documents/external/x"
    assert_error(client.put(path, json={"title": "no text"}), 400, "text")
    assert_error(client.put(path, json={"text": ""}), 400, "text")
    assert_error(client.put(path, content=b"{", headers={"content-type": "application/json"}), 400)
    assert_error(client.put(path, params={"collection": "bad name!"}, json={"text": "x"}), 400)
    assert_error(client.get(path, params={"collection": "nope"}), 404)
    assert_error(client.get("/api/documents/external/" + "x" * 1025), 400, "external_id")
    assert_error(client.get("/api/documents", params={"limit": 0}), 400, "limit")


def test_external_ids_are_documents_of_their_own(client) -> None:
    first = client.put("/api/documents/external/a", json={"text": "Same words."}).json()
    second = client.put("/api/documents/external/b", json={"text": "Same words."}).json()
    assert first["id"] != second["id"] and client.get("/api/documents").json()["total"] == 2
    tagged = client.put(
        "/api/documents/external/a", json={"text": "Same words.", "metadata": {"t": 1}}
    )
    assert tagged.json()["metadata"] == {"t": 1} and tagged.json()["id"] == first["id"]
