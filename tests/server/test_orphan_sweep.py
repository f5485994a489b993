"""The server's sweep (`--orphan-sweep`): inbox multipart uploads no attempt owns are
aborted while it serves; a pending attempt's upload and uploads in other buckets are not.
A real server and its S3 store; the sweep runs every second, and the test waits for it."""

from __future__ import annotations

import time
import uuid

import pytest
from botocore.exceptions import ClientError
from stack import env_backend, start_stack

from .protocol import PART, new_id, patch, payload, put_parts, s3_client, start

WAIT = 120  # seconds: a sweep every second, generous for a slow machine


def wait_aborted(client, bucket: str, key: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads") or []
        if not uploads:
            return
        time.sleep(0.2)
    raise AssertionError(f"no sweep aborted the upload of {bucket}/{key} within {WAIT} s")


@pytest.fixture
def swept_stack(tmp_path):
    args = ["--orphan-sweep", "1", "--bucket-prefix", f"sw{uuid.uuid4().hex[:8]}-"]
    s = start_stack(tmp_path / "server", *args, **env_backend())
    yield s
    s.stop()


def test_the_sweep_aborts_only_unowned_inbox_uploads(swept_stack):
    s = swept_stack
    client, buckets = s3_client(s)
    data = payload(PART + 1000)
    owned_id = new_id()
    s.register(owned_id, len(data))
    owned = start(s, owned_id)  # pending, with a part: the sweep leaves it alone
    put_parts(s, owned, data, [1])
    elsewhere = f"{buckets['inbox']}-peer"
    client.create_bucket(Bucket=elsewhere)
    other = client.create_multipart_upload(Bucket=elsewhere, Key="peer/file")["UploadId"]
    stray = client.create_multipart_upload(Bucket=buckets["inbox"], Key="stray/file")["UploadId"]

    wait_aborted(client, buckets["inbox"], "stray/file")
    assert "aborting orphaned multipart upload in inbox (key stray/file)" in s.log_tail(200)
    with pytest.raises(ClientError) as gone:
        client.upload_part(
            Bucket=buckets["inbox"], Key="stray/file", UploadId=stray, PartNumber=1, Body=b"x"
        )
    assert gone.value.response["Error"]["Code"] == "NoSuchUpload"

    # the sweep ran after both were made: the other bucket's upload completes
    part = client.upload_part(
        Bucket=elsewhere, Key="peer/file", UploadId=other, PartNumber=1, Body=b"peer bytes"
    )
    client.complete_multipart_upload(
        Bucket=elsewhere,
        Key="peer/file",
        UploadId=other,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert client.get_object(Bucket=elsewhere, Key="peer/file")["Body"].read() == b"peer bytes"
    client.delete_object(Bucket=elsewhere, Key="peer/file")
    client.delete_bucket(Bucket=elsewhere)

    # and the pending attempt goes on to acceptance, its first part kept
    put_parts(s, owned, data, [2])
    r = patch(s, owned["upload_id"], "uploaded", data)
    assert r.status_code == 204, r.text
    assert s.wait_accepted(owned["upload_id"], timeout=60)["status"] == "accepted"
