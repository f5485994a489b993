"""Upload Controller API: the good paths, end to end against real S3."""

from __future__ import annotations

import concurrent.futures
import time
from datetime import datetime, timezone

import pytest
import requests

from .protocol import (
    PART,
    MiB,
    download,
    error_id,
    multipart_uploads,
    new_id,
    patch,
    payload,
    put,
    put_parts,
    registered_upload,
    resent_part_completes_with_verified_bytes,
    sha256,
    sign,
    start,
    upload,
)


def test_full_roundtrip_accepted_and_downloaded(stack):
    data = payload(PART + 3 * MiB + 17)
    file_id = new_id()
    meta = stack.register(file_id, len(data), sha256=sha256(data), file_name="reads.bam")
    assert meta == {
        "file_id": file_id,
        "file_name": "reads.bam",
        "size": len(data),
        "sha256": sha256(data),
        "latest_upload_id": None,
    }

    attempt = start(stack, file_id)
    assert attempt["status"] == "pending"
    assert attempt["part_size"] == PART
    assert attempt["file_id"] == file_id
    assert set(attempt) == {"upload_id", "file_id", "part_size", "status", "sha256"}
    assert attempt["sha256"] is None

    r = requests.get(f"{stack.upload_api}/files/{file_id}", timeout=30)
    assert r.json()["latest_upload_id"] == attempt["upload_id"]

    # parts in reverse order, in parallel; part 2 uploaded twice (replaced)
    put(sign(stack, attempt["upload_id"], 2), b"x" * 100)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda n: put_parts(stack, attempt, data, [n]), [2, 1]))
    r = patch(stack, attempt["upload_id"], "uploaded", data)
    assert r.status_code == 204 and r.content == b""

    final = stack.wait_accepted(attempt["upload_id"])
    assert final == dict(attempt, status="accepted", sha256=sha256(data))
    assert multipart_uploads(stack, "inbox", file_id) == []

    obj, body = download(stack, file_id)
    assert body == data
    assert obj["id"] == file_id
    assert obj["name"] == "reads.bam"
    assert obj["size"] == len(data)
    assert obj["self_uri"].startswith("drs://") and obj["self_uri"].endswith("/" + file_id)
    assert obj["checksums"] == [{"type": "sha-256", "checksum": sha256(data)}]
    assert obj["access_methods"][0]["type"] == "s3"
    # RFC 3339 UTC with microseconds: Snakemake compares it with its sources' mtimes
    accepted = datetime.strptime(obj["created_time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert abs(accepted.replace(tzinfo=timezone.utc).timestamp() - time.time()) < 3600


def test_without_registered_checksum_drs_has_computed_one(stack):
    data = payload(1000)
    file_id = registered_upload(stack, data)
    r = requests.get(f"{stack.upload_api}/files/{file_id}", timeout=30)
    assert r.json()["sha256"] is None
    obj, body = download(stack, file_id)
    assert body == data
    assert obj["checksums"] == [{"type": "sha-256", "checksum": sha256(data)}]


def test_sha256_mismatch_rejected(stack):
    data = payload(2000)
    file_id = new_id()
    stack.register(file_id, len(data), sha256=sha256(b"something else"))
    final = upload(stack, file_id, data)
    assert final["status"] == "rejected"
    assert requests.get(f"{stack.drs_api}/objects/{file_id}", timeout=30).status_code == 404
    # a rejected attempt is not active: the file can be uploaded again
    again = start(stack, file_id)
    assert again["status"] == "pending"
    assert again["upload_id"] != final["upload_id"]


def test_completion_lists_parts_page_by_page(stack):
    """Three parts with one part per ListParts page: completion must follow the pages."""
    stack.configure(list_parts_page_size=1)
    data = payload(2 * PART + 1234)
    file_id = new_id()
    stack.register(file_id, len(data), sha256=sha256(data))
    final = upload(stack, file_id, data)
    assert final["status"] == "accepted"
    assert download(stack, file_id)[1] == data


def test_cancel_aborts_the_s3_upload(stack):
    file_id = new_id()
    stack.register(file_id, 5000)
    attempt = start(stack, file_id)
    put_parts(stack, attempt, payload(5000))
    assert len(multipart_uploads(stack, "inbox", file_id)) == 1
    url = sign(stack, attempt["upload_id"], 1)
    r = patch(stack, attempt["upload_id"], "cancelled")
    assert r.status_code == 204
    assert multipart_uploads(stack, "inbox", file_id) == []
    r = requests.get(f"{stack.upload_api}/uploads/{attempt['upload_id']}", timeout=30)
    assert r.json()["status"] == "cancelled"
    assert put(url, b"x").status_code == 404  # NoSuchUpload
    # cancelled is not active
    assert start(stack, file_id)["status"] == "pending"


def test_empty_file(stack):
    file_id = registered_upload(stack, b"", sha=sha256(b""))
    obj, body = download(stack, file_id)
    assert body == b"" and obj["size"] == 0


def test_upload_after_accepted_is_refused(stack):
    file_id = registered_upload(stack, payload(10))
    r = requests.post(f"{stack.upload_api}/uploads", json={"file_id": file_id}, timeout=30)
    assert r.status_code == 400
    assert error_id(r) == "existingActiveUpload"
    assert r.json()["data"]["active_upload"]["status"] == "accepted"


@pytest.mark.parametrize(
    "corrupted_first", [True, False], ids=["corrupted-first", "corrupted-last"]
)
def test_resent_part_completes_with_verified_bytes(stack, corrupted_first):
    resent_part_completes_with_verified_bytes(stack, corrupted_first)


def test_object_other_than_confirmed_sha256_is_rejected(stack):
    """Parts as confirmed, but the SHA-256 the client sent is not the object's: rejected,
    even with no SHA-256 registered."""
    data = payload(1000)
    file_id = new_id()
    stack.register(file_id, len(data))
    attempt = start(stack, file_id)
    put_parts(stack, attempt, data)
    r = patch(stack, attempt["upload_id"], "uploaded", data, sha256="0" * 64)
    assert r.status_code == 204, r.text
    final = stack.wait_accepted(attempt["upload_id"])
    assert final["status"] == "rejected", final
    assert "the client confirmed" in stack.file_info(file_id)["uploads"][0]["reason"]


def _sign_as(stack, upload_id: str, writer: str) -> requests.Response:
    return requests.post(
        f"{stack.upload_api}/uploads/{upload_id}/parts/1/signed_urls",
        json={"writer": writer},
        timeout=30,
    )


def test_second_writer_refused_while_the_first_is_active(stack):
    data = payload(100)
    file_id = new_id()
    stack.register(file_id, len(data))
    r = requests.post(
        f"{stack.upload_api}/uploads", json={"file_id": file_id, "writer": "A"}, timeout=30
    )
    upload_id = r.json()["upload_id"]
    assert _sign_as(stack, upload_id, "A").status_code == 200
    r = _sign_as(stack, upload_id, "B")
    assert r.status_code == 409 and error_id(r) == "uploadInProgress", r.text
    assert r.json()["data"]["upload_id"] == upload_id
    assert 1 <= r.json()["data"]["retry_after"] <= 600
    r = patch(stack, upload_id, "uploaded", data, writer="B")
    assert r.status_code == 409 and error_id(r) == "uploadInProgress", r.text
    # a client that names no writer is not held back (lenient)
    assert (
        requests.post(
            f"{stack.upload_api}/uploads/{upload_id}/parts/1/signed_urls", timeout=30
        ).status_code
        == 200
    )


def test_idle_writer_is_taken_over(stack):
    """After writer_lease seconds without a part URL, another client may take the attempt;
    the first one is then refused."""
    data = payload(100)
    file_id = new_id()
    stack.register(file_id, len(data))
    stack.configure(writer_lease=1)
    attempt = start(stack, file_id)
    assert _sign_as(stack, attempt["upload_id"], "A").status_code == 200
    time.sleep(3)  # well past the 1 s lease
    url = _sign_as(stack, attempt["upload_id"], "B").json()["url"]
    assert put(url, data).status_code == 200
    r = _sign_as(stack, attempt["upload_id"], "A")
    assert r.status_code == 409 and error_id(r) == "uploadInProgress"
    assert patch(stack, attempt["upload_id"], "uploaded", data, writer="B").status_code == 204
