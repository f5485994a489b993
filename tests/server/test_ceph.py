"""The reference server against Ceph RGW, the production "Ceph S3" (16.2, single node).

A compatibility subset of the server tests, driven with plain `requests`: what differs
between S3 implementations (ETags, ListParts pagination, signature and expiry checks,
aborts) meets the real thing here. Run with `python -m pytest -m ceph tests/server/test_ceph.py`;
the cluster comes from benchmarks/backends/ceph-rgw.sh (its Debian packages are installed
when missing, which needs root).

Ceph RGW quirks these tests pin down:
- CompleteMultipartUpload answers with an empty ETag; HEAD shows the right "md5-N" one.
- Bucket names need at least 3 characters.
- An expired pre-signed URL gets 403 AccessDenied, a tampered one 403 SignatureDoesNotMatch.
"""

from __future__ import annotations

import hashlib
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests
from stack import Stack

from benchmarks.backends.ceph import start_ceph, stop_ceph

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
    resent_part_completes_with_verified_bytes,
    s3_client,
    sha256,
    sign,
    start,
    upload,
    wait_object,
)

pytestmark = pytest.mark.ceph

TIMEOUT = 60


@pytest.fixture
def stack(ceph_server: Stack) -> Stack:
    """The Ceph-backed server with every knob back at its start value."""
    ceph_server.reset()
    yield ceph_server


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_server_runs_on_ceph(stack, ceph):
    info = stack.s3_info()
    assert info["endpoint"].rstrip("/") == ceph["endpoint"]
    s3, buckets = s3_client(stack)
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert set(buckets.values()) <= names


def test_full_upload_accepted_then_staged_download(stack):
    """Two full parts and a tail; completion must not trip over RGW's empty ETag."""
    data = payload(2 * PART + 5 * MiB + 17)
    file_id = new_id("ceph")
    stack.register(file_id, len(data), sha256=sha256(data), file_name="reads.bam")
    attempt = start(stack, file_id)
    assert attempt["part_size"] == PART

    for n, first in ((3, 2 * PART), (1, 0), (2, PART)):  # any order
        part = data[first : first + PART]
        r = put(sign(stack, attempt["upload_id"], n), part)
        assert r.status_code == 200, r.text
        assert r.headers["ETag"] == f'"{hashlib.md5(part).hexdigest()}"'
    r = patch(stack, attempt["upload_id"], "uploaded", data)
    assert r.status_code == 204, r.text
    assert r.content == b""

    final = stack.wait_accepted(attempt["upload_id"])
    assert final["status"] == "accepted", final
    assert multipart_uploads(stack, "inbox", file_id) == []

    # the first DRS request starts staging: 202 with Retry-After, then 200
    r = requests.get(f"{stack.drs_api}/objects/{file_id}", timeout=TIMEOUT)
    assert r.status_code in (200, 202), r.text
    if r.status_code == 202:
        assert int(r.headers["Retry-After"]) >= 0
    obj, body = download(stack, file_id)
    assert body == data
    assert obj["size"] == len(data)
    assert obj["checksums"] == [{"type": "sha-256", "checksum": sha256(data)}]

    # the whole object through the pre-signed URL in one GET, too
    whole = requests.get(obj["access_methods"][0]["access_url"]["url"], timeout=TIMEOUT)
    assert whole.status_code == 200 and whole.content == data


def test_completion_follows_list_parts_pages(stack):
    stack.configure(list_parts_page_size=1)
    data = payload(2 * PART + 1234)
    file_id = new_id("ceph")
    stack.register(file_id, len(data), sha256=sha256(data))
    final = upload(stack, file_id, data)
    assert final["status"] == "accepted", final
    _, body = download(stack, file_id)
    assert body == data


def test_sha256_mismatch_rejected(stack):
    data = payload(3 * MiB)
    file_id = new_id("ceph")
    stack.register(file_id, len(data), sha256=sha256(b"other bytes"))
    final = upload(stack, file_id, data)
    assert final["status"] == "rejected", final
    r = requests.get(f"{stack.drs_api}/objects/{file_id}", timeout=TIMEOUT)
    assert r.status_code == 404, r.text


def test_expired_or_tampered_upload_url_refused(stack):
    stack.configure(url_lifetime=1)
    data = payload(MiB)
    file_id = new_id("ceph")
    stack.register(file_id, len(data), sha256=sha256(data))
    attempt = start(stack, file_id)

    url = sign(stack, attempt["upload_id"], 1)
    signature = dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]
    tampered = _with_query(
        url, **{"X-Amz-Signature": ("0" if signature[0] != "0" else "1") + signature[1:]}
    )
    assert put(tampered, data).status_code == 403
    assert put(_with_query(url, **{"X-Amz-Expires": "3600"}), data).status_code == 403
    time.sleep(2.5)  # RGW checks expiry with one-second resolution
    r = put(url, data)
    assert r.status_code == 403, r.text
    assert "AccessDenied" in r.text

    stack.configure(url_lifetime=3600)  # a fresh URL for the same part works
    put_parts(stack, attempt, data)
    assert patch(stack, attempt["upload_id"], "uploaded", data).status_code == 204
    assert stack.wait_accepted(attempt["upload_id"])["status"] == "accepted"


def test_expired_download_url_refused(stack):
    data = payload(2 * MiB + 3)
    file_id = new_id("ceph")
    stack.register(file_id, len(data), sha256=sha256(data))
    assert upload(stack, file_id, data)["status"] == "accepted"
    stack.configure(url_lifetime=1)
    obj, _ = wait_object(stack, file_id)
    url = obj["access_methods"][0]["access_url"]["url"]
    time.sleep(2.5)
    r = requests.get(url, headers={"Range": "bytes=0-99"}, timeout=TIMEOUT)
    assert r.status_code == 403, r.text
    stack.configure(url_lifetime=3600)
    obj, body = download(stack, file_id)  # a fresh URL from DRS
    assert body == data


def test_missing_part_is_named_and_sent_again(stack):
    data = payload(2 * PART + 100)
    file_id = new_id("ceph")
    stack.register(file_id, len(data), sha256=sha256(data))
    attempt = start(stack, file_id)
    put_parts(stack, attempt, data, [1, 3])
    assert len(multipart_uploads(stack, "inbox", file_id)) == 1

    r = patch(stack, attempt["upload_id"], "uploaded", data)
    assert r.status_code == 400, r.text
    assert error_id(r) == "partsNotStored" and r.json()["data"]["parts"] == [2]
    r = requests.get(f"{stack.upload_api}/uploads/{attempt['upload_id']}", timeout=TIMEOUT)
    assert r.json()["status"] == "pending"
    assert len(multipart_uploads(stack, "inbox", file_id)) == 1  # the stored parts are kept
    put_parts(stack, attempt, data, [2])
    assert patch(stack, attempt["upload_id"], "uploaded", data).status_code == 204
    assert stack.wait_accepted(attempt["upload_id"])["status"] == "accepted"
    assert download(stack, file_id)[1] == data


@pytest.mark.parametrize(
    "corrupted_first", [True, False], ids=["corrupted-first", "corrupted-last"]
)
def test_resent_part_completes_with_verified_bytes(stack, corrupted_first):
    resent_part_completes_with_verified_bytes(stack, corrupted_first)


def test_ceph_restart_keeps_files(stack, ceph):
    """Stop and start the cluster under the running server: its files are still there."""
    data = payload(PART + 7)
    file_id = new_id("ceph")
    stack.register(file_id, len(data), sha256=sha256(data))
    assert upload(stack, file_id, data)["status"] == "accepted"

    stop_ceph(ceph["dir"])
    again = start_ceph(ceph["dir"])
    assert again["endpoint"] == ceph["endpoint"]  # the port of the previous start is reused

    _, body = download(stack, file_id)
    assert body == data
    other = payload(MiB)
    other_id = new_id("ceph")
    stack.register(other_id, len(other))
    assert upload(stack, other_id, other)["status"] == "accepted"
