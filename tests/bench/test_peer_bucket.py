"""The S3 peers upload into a bucket of their own, which the reference server's sweep of
its inbox leaves alone, and which every start of a kept store empties. Before, they wrote
into the inbox, and a peer upload longer than the sweep interval (10 min) failed with
NoSuchUpload. A real `ghga-cli serve` (embedded SeaweedFS) sweeping every second."""

from __future__ import annotations

import time

from benchmarks.api import s3_client
from benchmarks.stack import start_stack

CFG = {"server_args": ["--retry-after", "1", "--orphan-sweep", "1"]}
WAIT = 120  # seconds for a sweep that runs every second


def uploads(client, bucket: str) -> list:
    return client.list_multipart_uploads(Bucket=bucket).get("Uploads") or []


def test_peer_uploads_outlive_the_sweep_and_a_restart_empties_their_bucket(tmp_path):
    data_dir = tmp_path / "seaweedfs"
    stack = start_stack("seaweedfs", data_dir, CFG)
    try:
        buckets = stack.s3["buckets"]
        peers = buckets["peers"]
        assert peers not in (buckets["inbox"], buckets["permanent"], buckets["outbox"])
        client = s3_client(stack.s3)
        upload_id = client.create_multipart_upload(Bucket=peers, Key="bench/run/client0")[
            "UploadId"
        ]
        client.create_multipart_upload(Bucket=buckets["inbox"], Key="bench/run/client0")
        deadline = time.monotonic() + WAIT
        while uploads(client, buckets["inbox"]):  # the sweep ran: the inbox upload is gone
            assert time.monotonic() < deadline, f"no sweep within {WAIT} s"
            time.sleep(0.2)
        part = client.upload_part(
            Bucket=peers, Key="bench/run/client0", UploadId=upload_id, PartNumber=1, Body=b"abc"
        )
        client.complete_multipart_upload(
            Bucket=peers,
            Key="bench/run/client0",
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
        assert client.get_object(Bucket=peers, Key="bench/run/client0")["Body"].read() == b"abc"
        # left as by a run in flight when the campaign stopped
        client.create_multipart_upload(Bucket=peers, Key="bench/run/client1")
    finally:
        stack.stop(keep_store=True)

    stack = start_stack("seaweedfs", data_dir, CFG, kept=True)
    try:
        client = s3_client(stack.s3)
        peers = stack.s3["buckets"]["peers"]
        assert client.list_objects_v2(Bucket=peers).get("KeyCount") == 0
        assert uploads(client, peers) == []
    finally:
        stack.stop()
