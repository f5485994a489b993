"""The wire protocol driven by hand: plain `requests` calls and PUTs of bytes.

Deliberately independent of ghga_tasks' client code: these helpers are what the server
is tested with.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from typing import Dict, Iterable, List, Optional, Tuple

import requests

from ghga_tasks.units import MiB

PART = 16 * MiB  # the part size the server picks for files up to 160 GiB
TIMEOUT = 60


def new_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def payload(size: int) -> bytes:
    return os.urandom(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def error_id(r: requests.Response) -> Optional[str]:
    try:
        return r.json().get("exception_id")
    except ValueError:
        return None


def start(stack, file_id: str) -> dict:
    r = requests.post(f"{stack.upload_api}/uploads", json={"file_id": file_id}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()


def sign(stack, upload_id: str, part_no: int) -> str:
    r = requests.post(
        f"{stack.upload_api}/uploads/{upload_id}/parts/{part_no}/signed_urls", timeout=TIMEOUT
    )
    assert r.status_code == 200, r.text
    return r.json()["url"]


def put(url: str, body: bytes) -> requests.Response:
    """PUT bytes with an explicit Content-Length (requests sets it for bytes)."""
    return requests.put(url, data=body, timeout=TIMEOUT)


def parts_of(data: bytes, part_size: int) -> List[Tuple[int, bytes]]:
    count = max(1, -(-len(data) // part_size))
    return [(n, data[(n - 1) * part_size : n * part_size]) for n in range(1, count + 1)]


def put_parts(stack, attempt: dict, data: bytes, numbers: Optional[Iterable[int]] = None) -> None:
    """Sign and PUT the given parts (default: all) of `data`."""
    parts = dict(parts_of(data, attempt["part_size"]))
    for n in numbers if numbers is not None else parts:
        r = put(sign(stack, attempt["upload_id"], n), parts[n])
        assert r.status_code == 200, r.text
        assert r.headers.get("ETag"), "S3 answered without an ETag"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def confirmation(data: bytes, part_size: int) -> dict:
    """What a client confirms an upload of `data` with: each part's MD5, the SHA-256."""
    return {"parts_md5": [md5(p) for _, p in parts_of(data, part_size)], "sha256": sha256(data)}


def patch(
    stack, upload_id: str, status: str, data: Optional[bytes] = None, **body
) -> requests.Response:
    """PATCH the attempt's status; with `data`, confirm it with that file's checksums."""
    if data is not None:
        attempt = requests.get(f"{stack.upload_api}/uploads/{upload_id}", timeout=TIMEOUT).json()
        body = {**confirmation(data, attempt["part_size"]), **body}
    return requests.patch(
        f"{stack.upload_api}/uploads/{upload_id}", json={"status": status, **body}, timeout=TIMEOUT
    )


def upload(stack, file_id: str, data: bytes, timeout: float = 60) -> dict:
    """Upload a registered file completely; returns the final attempt (accepted or not)."""
    attempt = start(stack, file_id)
    put_parts(stack, attempt, data)
    r = patch(stack, attempt["upload_id"], "uploaded", data)
    assert r.status_code == 204, r.text
    assert r.content == b""
    return stack.wait_accepted(attempt["upload_id"], timeout=timeout)


def registered_upload(stack, data: bytes, sha: Optional[str] = None, **kw) -> str:
    """Register a new file for `data` and upload it until accepted; returns its id."""
    file_id = new_id()
    stack.register(file_id, len(data), sha256=sha, **kw)
    final = upload(stack, file_id, data)
    assert final["status"] == "accepted", final
    return file_id


def drs(stack, object_id: str) -> requests.Response:
    return requests.get(f"{stack.drs_api}/objects/{object_id}", timeout=TIMEOUT)


def wait_object(stack, object_id: str, timeout: float = 30) -> Tuple[dict, int]:
    """Poll the DRS object until 200, honouring Retry-After; returns (object, 202 count)."""
    deadline = time.monotonic() + timeout
    waits = 0
    while True:
        r = drs(stack, object_id)
        if r.status_code == 200:
            return r.json(), waits
        assert r.status_code == 202, r.text
        assert r.content in (b"", b"null")
        retry = int(r.headers["Retry-After"])
        waits += 1
        assert time.monotonic() + retry < deadline, f"{object_id} not staged in {timeout} s"
        time.sleep(retry if retry else 0.1)


def fetch(url: str, size: int, chunk: int = 7 * MiB) -> bytes:
    """Download with ranged GETs, checking 206 and Content-Range."""
    out = bytearray()
    for first in range(0, size, chunk):
        last = min(first + chunk, size) - 1
        r = requests.get(url, headers={"Range": f"bytes={first}-{last}"}, timeout=TIMEOUT)
        assert r.status_code == 206, (r.status_code, r.text[:300])
        assert r.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
        out += r.content
    return bytes(out)


def download(stack, object_id: str) -> Tuple[dict, bytes]:
    """Wait for staging, then fetch the object through its pre-signed URL."""
    obj, _ = wait_object(stack, object_id)
    url = obj["access_methods"][0]["access_url"]["url"]
    if obj["size"] == 0:
        r = requests.get(url, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        return obj, r.content
    return obj, fetch(url, obj["size"])


def s3_client(stack):
    """boto3 client with the server's own S3 credentials (to inspect the store)."""
    import boto3
    from botocore.config import Config

    info = stack.s3_info()
    return boto3.client(
        "s3",
        endpoint_url=info["endpoint"],
        aws_access_key_id=info["access_key"],
        aws_secret_access_key=info["secret_key"],
        region_name=info["region"],
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=5,
            read_timeout=60,
        ),
    ), info["buckets"]


def multipart_uploads(stack, bucket: str, prefix: str) -> List[Dict]:
    s3, buckets = s3_client(stack)
    return s3.list_multipart_uploads(Bucket=buckets[bucket], Prefix=prefix).get("Uploads") or []


def object_keys(stack, bucket: str, prefix: str) -> List[str]:
    s3, buckets = s3_client(stack)
    page = s3.list_objects_v2(Bucket=buckets[bucket], Prefix=prefix)
    return [o["Key"] for o in page.get("Contents") or []]


def flipped(data: bytes, at: int = 0) -> bytes:
    """`data` with one bit flipped, as a corrupted transfer would deliver it."""
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def resent_part_completes_with_verified_bytes(stack, corrupted_first: bool) -> None:
    """Part 1 is stored twice, once with a flipped bit; the confirmation names the good MD5.

    Completion must use exactly the confirmed bytes, whichever copy S3 holds last. A store
    that keeps every copy (SeaweedFS) completes at once; one that replaces (Ceph) refuses
    with partsNotStored while only the bad copy is there, then completes once it is sent
    again. No SHA-256 is registered: only the client's confirmation guards the bytes."""
    data = payload(PART + 100)
    file_id = new_id()
    stack.register(file_id, len(data))
    attempt = start(stack, file_id)
    good, bad = data[:PART], flipped(data[:PART], PART // 2)
    put_parts(stack, attempt, data, [2])
    for body in (bad, good) if corrupted_first else (good, bad):
        assert put(sign(stack, attempt["upload_id"], 1), body).status_code == 200
        time.sleep(1.1)  # LastModified has 1 s resolution: the second copy is the newer one
    r = patch(stack, attempt["upload_id"], "uploaded", data)
    if r.status_code == 400:
        assert error_id(r) == "partsNotStored" and r.json()["data"]["parts"] == [1], r.text
        put_parts(stack, attempt, data, [1])
        r = patch(stack, attempt["upload_id"], "uploaded", data)
    assert r.status_code == 204, r.text
    final = stack.wait_accepted(attempt["upload_id"])
    assert final["status"] == "accepted" and final["sha256"] == sha256(data), final
    assert download(stack, file_id)[1] == data
