"""Every error of PROTOCOL.md's tables, with its status and exception_id."""

from __future__ import annotations

import pytest
import requests

from .protocol import (
    PART,
    download,
    error_id,
    md5,
    multipart_uploads,
    new_id,
    patch,
    payload,
    put,
    put_parts,
    registered_upload,
    sha256,
    sign,
    start,
)

T = 30


def test_unknown_file(stack):
    missing = new_id("missing")
    r = requests.get(f"{stack.upload_api}/files/{missing}", timeout=T)
    assert r.status_code == 404 and error_id(r) == "fileNotRegistered"
    assert set(r.json()) == {"exception_id", "description", "data"}
    r = requests.post(f"{stack.upload_api}/uploads", json={"file_id": missing}, timeout=T)
    assert r.status_code == 400 and error_id(r) == "fileNotRegistered"


def test_second_active_upload(stack):
    file_id = new_id()
    stack.register(file_id, 100)
    first = start(stack, file_id)
    r = requests.post(f"{stack.upload_api}/uploads", json={"file_id": file_id}, timeout=T)
    assert r.status_code == 400 and error_id(r) == "existingActiveUpload"
    assert r.json()["data"] == {"file_id": file_id, "active_upload": first}
    assert len(multipart_uploads(stack, "inbox", file_id)) == 1  # no second S3 upload


@pytest.mark.parametrize("part_no", ["0", "10001", "-1", "one"])
def test_part_number_out_of_range(stack, part_no):
    file_id = new_id()
    stack.register(file_id, 100)
    upload_id = start(stack, file_id)["upload_id"]
    r = requests.post(
        f"{stack.upload_api}/uploads/{upload_id}/parts/{part_no}/signed_urls", timeout=T
    )
    assert r.status_code == 422
    assert "detail" in r.json()


def test_part_numbers_at_the_limits_are_fine(stack):
    file_id = new_id()
    stack.register(file_id, 100)
    upload_id = start(stack, file_id)["upload_id"]
    for n in (1, 10000):
        assert "partNumber=%d" % n in sign(stack, upload_id, n)


def test_signed_url_for_non_pending_upload(stack):
    file_id = new_id()
    stack.register(file_id, 100)
    upload_id = start(stack, file_id)["upload_id"]
    assert patch(stack, upload_id, "cancelled").status_code == 204
    r = requests.post(f"{stack.upload_api}/uploads/{upload_id}/parts/1/signed_urls", timeout=T)
    assert r.status_code == 400 and error_id(r) == "uploadNotPending"
    assert r.json()["data"] == {"upload_id": upload_id, "current_upload_status": "cancelled"}


def test_status_change_of_non_pending_upload(stack):
    file_id = registered_upload(stack, payload(10))
    upload_id = stack.file_info(file_id)["latest_upload_id"]
    for status in ("uploaded", "cancelled"):
        r = patch(stack, upload_id, status)
        assert r.status_code == 400 and error_id(r) == "uploadNotPending"
        assert r.json()["data"]["current_upload_status"] == "accepted"


def _completion_fails(stack, attempt, file_id, words, data):
    r = patch(stack, attempt["upload_id"], "uploaded", data)
    assert r.status_code == 400 and error_id(r) == "uploadStatusChange", r.text
    assert words in r.json()["description"]
    r = requests.get(f"{stack.upload_api}/uploads/{attempt['upload_id']}", timeout=T)
    assert r.json()["status"] == "failed"
    assert multipart_uploads(stack, "inbox", file_id) == []  # aborted
    # failed is not active: a new attempt may start
    assert start(stack, file_id)["status"] == "pending"


def _parts_not_stored(stack, attempt, data, numbers):
    """A confirmation naming parts S3 does not hold is refused; the attempt stays pending."""
    r = patch(stack, attempt["upload_id"], "uploaded", data)
    assert r.status_code == 400 and error_id(r) == "partsNotStored", r.text
    assert r.json()["data"] == {"upload_id": attempt["upload_id"], "parts": numbers}
    r = requests.get(f"{stack.upload_api}/uploads/{attempt['upload_id']}", timeout=T)
    assert r.json()["status"] == "pending"


def test_completion_with_missing_part(stack):
    data = payload(PART + 10)
    file_id = new_id()
    stack.register(file_id, len(data))
    attempt = start(stack, file_id)
    put_parts(stack, attempt, data, [2])
    _parts_not_stored(stack, attempt, data, [1])
    put_parts(stack, attempt, data, [1])  # sent again: now it completes
    assert patch(stack, attempt["upload_id"], "uploaded", data).status_code == 204
    assert stack.wait_accepted(attempt["upload_id"])["status"] == "accepted"


def test_completion_without_any_part(stack):
    file_id = new_id()
    stack.register(file_id, 10)
    attempt = start(stack, file_id)
    _parts_not_stored(stack, attempt, payload(10), [1])


def test_completion_with_other_bytes_than_confirmed(stack):
    """The stored part has other bytes than the client's MD5 says: never completed with it."""
    data = payload(1000)
    file_id = new_id()
    stack.register(file_id, len(data))
    attempt = start(stack, file_id)
    assert put(sign(stack, attempt["upload_id"], 1), payload(1000)).status_code == 200
    _parts_not_stored(stack, attempt, data, [1])


def test_completion_with_wrongly_sized_last_part(stack):
    """Confirmed with the bytes S3 holds, but the part is not the registered size."""
    file_id = new_id()
    stack.register(file_id, 1000)
    attempt = start(stack, file_id)
    short = payload(999)
    assert put(sign(stack, attempt["upload_id"], 1), short).status_code == 200
    _completion_fails(stack, attempt, file_id, "part 1 has 999 bytes, expected 1000", short)


def test_completion_with_wrongly_sized_middle_part(stack):
    """A part that is not exactly part_size (but S3-valid, >= 5 MiB) before the last."""
    size = PART + 100
    file_id = new_id()
    stack.register(file_id, size)
    attempt = start(stack, file_id)
    first, last = payload(PART - 100), payload(200)
    assert put(sign(stack, attempt["upload_id"], 1), first).status_code == 200
    assert put(sign(stack, attempt["upload_id"], 2), last).status_code == 200
    body = {"parts_md5": [md5(first), md5(last)], "sha256": sha256(first + last)}
    r = patch(stack, attempt["upload_id"], "uploaded", **body)
    assert r.status_code == 400 and error_id(r) == "uploadStatusChange", r.text
    assert f"part 1 has {PART - 100} bytes" in r.json()["description"]


def test_completion_leaves_out_extra_parts(stack):
    """A part number beyond the file's is not part of the completed object."""
    file_id = new_id()
    data = payload(100)
    stack.register(file_id, 100)
    attempt = start(stack, file_id)
    put_parts(stack, attempt, data)
    assert put(sign(stack, attempt["upload_id"], 2), b"x").status_code == 200
    assert patch(stack, attempt["upload_id"], "uploaded", data).status_code == 204
    assert stack.wait_accepted(attempt["upload_id"])["status"] == "accepted"
    assert download(stack, file_id)[1] == data


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"sha256": "0" * 64},
        {"parts_md5": ["0" * 32]},
        {"parts_md5": ["0" * 32, "1" * 32], "sha256": "0" * 64},
        {"parts_md5": ["XYZ"], "sha256": "0" * 64},
        {"parts_md5": ["0" * 32], "sha256": "short"},
    ],
)
def test_confirmation_without_valid_checksums(stack, body):
    file_id = new_id()
    stack.register(file_id, 100)
    attempt = start(stack, file_id)
    put_parts(stack, attempt, payload(100))
    r = patch(stack, attempt["upload_id"], "uploaded", **body)
    assert r.status_code == 422 and error_id(r) == "invalidConfirmation", r.text
    r = requests.get(f"{stack.upload_api}/uploads/{attempt['upload_id']}", timeout=T)
    assert r.json()["status"] == "pending"


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("POST", "/uploads", b"{not json"),
        ("POST", "/uploads", b"{}"),
        ("POST", "/uploads", b'{"file_id": 5}'),
        ("POST", "/uploads", b"[]"),
        ("PATCH", "/uploads/{upload_id}", b"{not json"),
        ("PATCH", "/uploads/{upload_id}", b'{"status": "accepted"}'),
        ("PATCH", "/uploads/{upload_id}", b"{}"),
    ],
)
def test_malformed_json(stack, method, path, body):
    file_id = new_id()
    stack.register(file_id, 100)
    upload_id = start(stack, file_id)["upload_id"]
    r = requests.request(
        method,
        stack.upload_api + path.format(upload_id=upload_id),
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=T,
    )
    assert r.status_code == 422, r.text
    assert "detail" in r.json()
    r = requests.get(f"{stack.upload_api}/uploads/{upload_id}", timeout=T)
    assert r.json()["status"] == "pending"


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/uploads/nope"),
        ("POST", "/uploads/nope/parts/1/signed_urls"),
        ("PATCH", "/uploads/nope"),
    ],
)
def test_unknown_upload_id(stack, method, path):
    r = requests.request(method, stack.upload_api + path, json={"status": "uploaded"}, timeout=T)
    assert r.status_code == 404 and error_id(r) == "noSuchUpload"
    assert r.json()["data"] == {"upload_id": "nope"}


def test_register_twice_with_different_size(stack):
    file_id = new_id()
    r = requests.post(f"{stack.admin_api}/files", json={"file_id": file_id, "size": 10}, timeout=T)
    assert r.status_code == 201
    r = requests.post(f"{stack.admin_api}/files", json={"file_id": file_id, "size": 10}, timeout=T)
    assert r.status_code == 200  # identical: fine
    r = requests.post(f"{stack.admin_api}/files", json={"file_id": file_id, "size": 11}, timeout=T)
    assert r.status_code == 409 and error_id(r) == "fileAlreadyRegistered"
    assert r.json()["data"]["registered"]["size"] == 10


@pytest.mark.parametrize(
    "body",
    [
        {"file_id": "bad id", "size": 1},
        {"file_id": "x/y", "size": 1},
        {"file_id": "ok", "size": -1},
        {"file_id": "ok", "size": 1, "sha256": "abc"},
        {"size": 1},
    ],
)
def test_register_invalid(stack, body):
    r = requests.post(f"{stack.admin_api}/files", json=body, timeout=T)
    assert r.status_code == 422


def test_unknown_drs_object(stack):
    r = requests.get(f"{stack.drs_api}/objects/{new_id('missing')}", timeout=T)
    assert r.status_code == 404 and error_id(r) == "noSuchObject"
    # registered but not uploaded: not an object yet
    file_id = new_id()
    stack.register(file_id, 10)
    r = requests.get(f"{stack.drs_api}/objects/{file_id}", timeout=T)
    assert r.status_code == 404 and error_id(r) == "noSuchObject"


def test_tampered_upload_url_refused_by_s3(stack):
    file_id = new_id()
    stack.register(file_id, 100)
    upload_id = start(stack, file_id)["upload_id"]
    url = sign(stack, upload_id, 1)
    for bad in (
        url.replace("partNumber=1", "partNumber=2"),
        url[:-4] + ("0000" if not url.endswith("0000") else "1111"),
    ):
        r = put(bad, payload(100))
        assert r.status_code == 403, r.text
    assert put(url, payload(100)).status_code == 200


def test_expired_upload_url_refused_by_s3(stack):
    import time

    stack.configure(url_lifetime=1)
    file_id = new_id()
    stack.register(file_id, 100)
    upload_id = start(stack, file_id)["upload_id"]
    url = sign(stack, upload_id, 1)
    assert "X-Amz-Expires=1" in url
    time.sleep(3)  # well past the 1 s lifetime
    r = put(url, payload(100))
    assert r.status_code == 403, r.text
    # a fresh URL for the same part works (one that lives long enough on a slow machine)
    stack.configure(url_lifetime=3600)
    assert put(sign(stack, upload_id, 1), payload(100)).status_code == 200
