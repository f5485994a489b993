"""The server's own admin API: registration, listing, deletion, knobs, S3 info."""

from __future__ import annotations

import requests

from .protocol import (
    PART,
    download,
    multipart_uploads,
    new_id,
    object_keys,
    payload,
    put_parts,
    registered_upload,
    s3_client,
    sha256,
    start,
    upload,
    wait_object,
)

T = 30


def test_register_returns_file_metadata(stack):
    file_id = new_id()
    r = requests.post(
        f"{stack.admin_api}/files",
        json={"file_id": file_id, "size": 7, "sha256": "AB" * 32},
        timeout=T,
    )
    assert r.status_code == 201
    assert r.json() == {
        "file_id": file_id,
        "file_name": file_id,
        "size": 7,
        "sha256": "ab" * 32,
        "latest_upload_id": None,
    }
    r = requests.get(f"{stack.upload_api}/files/{file_id}", timeout=T)
    assert r.status_code == 200 and r.json()["sha256"] == "ab" * 32


def test_register_same_id_with_other_checksum_conflicts(stack):
    file_id = new_id()
    stack.register(file_id, 7, sha256="ab" * 32)
    r = requests.post(
        f"{stack.admin_api}/files",
        json={"file_id": file_id, "size": 7, "sha256": "cd" * 32},
        timeout=T,
    )
    assert r.status_code == 409


def test_list_files(stack):
    ids = {new_id() for _ in range(3)}
    for file_id in ids:
        stack.register(file_id, 1)
    r = requests.get(f"{stack.admin_api}/files", timeout=T)
    assert r.status_code == 200
    listed = {f["file_id"]: f for f in r.json()}
    assert ids <= set(listed)
    assert all(
        set(listed[i]) == {"file_id", "file_name", "size", "sha256", "latest_upload_id"}
        for i in ids
    )


def test_delete_removes_everything_and_allows_reuse(stack):
    data = payload(3000)
    file_id = registered_upload(stack, data)
    wait_object(stack, file_id)  # now in permanent and outbox
    assert object_keys(stack, "permanent", file_id) == [file_id]
    assert object_keys(stack, "outbox", file_id) == [file_id]
    r = requests.delete(f"{stack.admin_api}/files/{file_id}", timeout=T)
    assert r.status_code == 204 and r.content == b""
    for bucket in ("inbox", "permanent", "outbox"):
        assert object_keys(stack, bucket, file_id) == []
    assert requests.get(f"{stack.upload_api}/files/{file_id}", timeout=T).status_code == 404
    assert requests.get(f"{stack.drs_api}/objects/{file_id}", timeout=T).status_code == 404
    # the id can be registered again, with another size, and used
    other = payload(1000)
    stack.register(file_id, len(other), sha256=sha256(other))
    assert upload(stack, file_id, other)["status"] == "accepted"
    assert download(stack, file_id)[1] == other


def test_delete_aborts_multipart_uploads(stack):
    file_id = new_id()
    data = payload(PART + 5)
    stack.register(file_id, len(data))
    attempt = start(stack, file_id)
    put_parts(stack, attempt, data, [2])
    assert len(multipart_uploads(stack, "inbox", file_id)) == 1
    stack.delete(file_id)
    assert multipart_uploads(stack, "inbox", file_id) == []
    r = requests.get(f"{stack.upload_api}/uploads/{attempt['upload_id']}", timeout=T)
    assert r.status_code == 404


def test_delete_unknown_is_fine(stack):
    r = requests.delete(f"{stack.admin_api}/files/{new_id('never')}", timeout=T)
    assert r.status_code == 204


def test_config_get_patch_reset(stack):
    start_config = stack.config()
    assert start_config == {
        "retry_after": 1,
        "staging_delay": 0.0,
        "url_lifetime": 3600,
        "outbox_lifetime": None,
        "list_parts_page_size": 1000,
        "error_rate": 0.0,
        "writer_lease": 600.0,
        "api_delay": 0.0,
    }
    changes = {"staging_delay": 1.5, "outbox_lifetime": 60, "error_rate": 0.25, "api_delay": 0.5}
    r = requests.patch(f"{stack.admin_api}/config", json=changes, timeout=T)
    assert r.status_code == 200
    assert r.json() == dict(start_config, **changes)
    stack.reset()
    assert stack.config() == start_config


def test_config_rejects_bad_values(stack):
    before = stack.config()
    for body in (
        {"nonsense": 1},
        {"error_rate": 2},
        {"retry_after": -1},
        {"list_parts_page_size": 0},
        {"url_lifetime": "long"},
        {"retry_after": 1.5},
        {"api_delay": -1},
        {"api_delay": 61},
    ):
        r = requests.patch(f"{stack.admin_api}/config", json=body, timeout=T)
        assert r.status_code == 422, body
    assert stack.config() == before


def test_s3_info_gives_working_credentials(stack):
    info = stack.s3_info()
    assert set(info) == {"endpoint", "access_key", "secret_key", "region", "buckets"}
    assert set(info["buckets"]) == {"inbox", "permanent", "outbox"}
    assert info["endpoint"] == stack.s3_endpoint
    s3, buckets = s3_client(stack)
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert set(buckets.values()) <= names


def test_file_details(stack):
    data = payload(100)
    file_id = registered_upload(stack, data)
    info = stack.file_info(file_id)
    assert info["checksum"] == sha256(data)
    assert [u["status"] for u in info["uploads"]] == ["accepted"]
    assert info["outbox"] is None
