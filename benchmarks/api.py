"""The harness's side of the services: registering, seeding, staging, cleaning up.

`ServiceApi` talks to the reference server (`ghga-cli serve`) exactly as PROTOCOL.md
says, plus its admin API. `DirectApi` offers the same methods straight on an S3 server
with boto3 (pre-signed URLs made by the harness); it runs the peers and curl when no
reference server is available, and is recorded as ``api: direct-s3``.

Seeding is set-up, never measured: through the reference server it is `ghga-cli
upload-by-id --wait`; straight on S3 (`DirectApi`) the parts go through pre-signed part URLs
with pycurl, one after the other.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import unquote, urlsplit

import pycurl
import requests

from ghga_tasks.parts import upload_part_size
from ghga_tasks.units import GiB, MiB


class ApiError(RuntimeError):
    pass


def confirmation(path: Path, part_size: int) -> dict:
    """The part MD5s and the SHA-256 an upload of `path` is confirmed with (PROTOCOL.md § 1)."""
    parts_md5, whole = [], hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(part_size), b""):
            parts_md5.append(hashlib.md5(block, usedforsecurity=False).hexdigest())
            whole.update(block)
    return {"parts_md5": parts_md5 or [hashlib.md5(b"").hexdigest()], "sha256": whole.hexdigest()}


@dataclass
class Upload:
    upload_id: str
    file_id: str
    part_size: int


def put_range(url: str, path: Path, offset: int, length: int) -> None:
    """PUT ``length`` bytes of ``path`` at ``offset`` with an explicit Content-Length."""
    with open(path, "rb", buffering=0) as f:
        f.seek(offset)
        left = length

        def read(n: int) -> bytes:
            nonlocal left
            chunk = f.read(min(n, left))
            left -= len(chunk)
            return chunk

        c = pycurl.Curl()
        try:
            c.setopt(pycurl.URL, url)
            c.setopt(pycurl.UPLOAD, 1)
            c.setopt(pycurl.INFILESIZE_LARGE, length)
            c.setopt(pycurl.READFUNCTION, read)
            c.setopt(pycurl.UPLOAD_BUFFERSIZE, 2 * MiB)
            c.setopt(pycurl.HTTPHEADER, ["Expect:"])
            c.setopt(pycurl.WRITEFUNCTION, lambda b: None)
            c.perform()
            status = c.getinfo(pycurl.RESPONSE_CODE)
        finally:
            c.close()
    if status != 200:
        raise ApiError(f"PUT part at {offset}: HTTP {status}")


def s3_location(url: str) -> tuple[str, str]:
    """(bucket, key) of a path-style pre-signed URL."""
    path = unquote(urlsplit(url).path).lstrip("/")
    bucket, _, key = path.partition("/")
    return bucket, key


DELETE_TIMEOUT = 1800.0


def acceptance_deadline(size: int) -> float:
    """Seconds to wait for the server's acceptance (hash + copy), growing with the size."""
    return 600.0 + 60.0 * size / GiB


class ServiceApi:
    """The reference server's Upload, DRS and admin APIs."""

    kind = "ghga-server"

    def __init__(self, info: dict, timeout: float = 60.0):
        self.upload_api = info["upload_api"].rstrip("/")
        self.drs_api = info["drs_api"].rstrip("/")
        self.admin_api = info["admin_api"].rstrip("/")
        self.http = requests.Session()
        self.timeout = timeout

    def _call(
        self, method: str, url: str, ok=(200,), timeout: Optional[float] = None, **kw
    ) -> requests.Response:
        resp = self.http.request(method, url, timeout=timeout or self.timeout, **kw)
        if resp.status_code not in ok:
            raise ApiError(f"{method} {url}: HTTP {resp.status_code} {resp.text[:300]}")
        return resp

    def s3_info(self) -> dict:
        return self._call("GET", f"{self.admin_api}/s3").json()

    def register(self, file_id: str, size: int, sha256: Optional[str]) -> None:
        body = {"file_id": file_id, "size": size}
        if sha256:
            body["sha256"] = sha256
        self._call("POST", f"{self.admin_api}/files", ok=(200, 201, 204), json=body)

    def delete(self, file_id: str) -> None:
        # the server answers once the objects are gone: for a 200 GiB file on RGW (multipart
        # objects of 6,400 parts) that took two minutes
        self._call(
            "DELETE",
            f"{self.admin_api}/files/{file_id}",
            ok=(200, 202, 204, 404),
            timeout=DELETE_TIMEOUT,
        )

    def list_files(self) -> list[str]:
        """The ids of every registered file."""
        return [f["file_id"] for f in self._call("GET", f"{self.admin_api}/files").json()]

    def begin_upload(self, file_id: str) -> Upload:
        att = self._call("POST", f"{self.upload_api}/uploads", json={"file_id": file_id}).json()
        return Upload(att["upload_id"], file_id, int(att["part_size"]))

    def part_url(self, up: Upload, part_no: int) -> str:
        url = f"{self.upload_api}/uploads/{up.upload_id}/parts/{part_no}/signed_urls"
        return self._call("POST", url).json()["url"]

    def complete(self, up: Upload, path: Path) -> None:
        """Confirm with the checksums of `path`, the file the parts were cut from."""
        self._call(
            "PATCH",
            f"{self.upload_api}/uploads/{up.upload_id}",
            ok=(200, 204),
            json={"status": "uploaded", **confirmation(path, up.part_size)},
        )

    def latest_upload_status(self, file_id: str) -> str:
        meta = self._call("GET", f"{self.upload_api}/files/{file_id}").json()
        if not meta.get("latest_upload_id"):
            return "none"
        att = self._call("GET", f"{self.upload_api}/uploads/{meta['latest_upload_id']}").json()
        return att["status"]

    def wait_accepted(self, file_id: str, sha256: str, deadline: float = 600.0) -> bool:
        """True when the server accepted the upload (it checks the registered SHA-256)."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            status = self.latest_upload_status(file_id)
            if status == "accepted":
                return True
            if status in ("rejected", "failed", "cancelled", "none"):
                return False
            time.sleep(0.2)
        return False

    def drs_object(self, file_id: str, deadline: float = 600.0) -> dict:
        """The DrsObject, after waiting out staging (202 + Retry-After, capped)."""
        end = time.monotonic() + deadline
        while True:
            resp = self._call("GET", f"{self.drs_api}/objects/{file_id}", ok=(200, 202))
            if resp.status_code == 200:
                return resp.json()
            if time.monotonic() > end:
                raise ApiError(f"{file_id}: still staging after {deadline}s")
            try:
                wait = float(resp.headers.get("Retry-After", "1"))
            except ValueError:
                wait = 1.0
            time.sleep(min(max(wait, 0.1), 5.0))

    def access_url(self, file_id: str) -> str:
        return self.drs_object(file_id)["access_methods"][0]["access_url"]["url"]

    # -- set-up helpers, shared with DirectApi -------------------------------

    def seed(self, file_id: str, path: Path, sha256: str, state_dir: Path) -> None:
        """Register ``file_id`` and upload ``path`` with ``ghga-cli upload-by-id --wait``
        (parallel parts; set-up, not measured), on loopback. ``state_dir`` is ghga-cli's:
        when it holds an interrupted upload of the file, the upload resumes."""
        from .servers import ghga_cli_argv, ghga_env

        size = path.stat().st_size
        self.register(file_id, size, sha256)
        wait = int(acceptance_deadline(size))
        state_dir.mkdir(parents=True, exist_ok=True)
        argv = ghga_cli_argv()
        if argv is None:
            raise ApiError("seeding needs ghga-cli, which cannot be imported")
        argv += ["upload-by-id", "--api-url", self.upload_api, "--file-id", file_id]
        argv += ["--file-path", str(path), "--state-dir", str(state_dir), "--quiet"]
        argv += ["--wait", "--max-wait", str(wait)]
        try:
            proc = subprocess.run(
                argv,
                env=ghga_env(home=state_dir),
                capture_output=True,
                text=True,
                timeout=3 * wait,
            )
        except subprocess.TimeoutExpired:
            raise ApiError(f"seeding {file_id}: ghga-cli still running after {3 * wait} s")
        if proc.returncode != 0:
            raise ApiError(f"seeding {file_id}: ghga-cli exited {proc.returncode}: {proc.stderr}")
        if not self.wait_accepted(file_id, sha256, wait):
            raise ApiError(f"seeded {file_id} was not accepted")


class DirectApi(ServiceApi):
    """The same calls straight on an S3 server; pre-signed URLs made here."""

    kind = "direct-s3"

    def __init__(self, s3: dict, timeout: float = 60.0):
        import boto3
        from botocore.config import Config

        self.s3 = s3
        self.client = boto3.client(
            "s3",
            endpoint_url=s3["endpoint"],
            aws_access_key_id=s3["access_key"],
            aws_secret_access_key=s3["secret_key"],
            region_name=s3.get("region", "us-east-1"),
            config=Config(
                s3={"addressing_style": "path"},
                signature_version="s3v4",
                retries={"max_attempts": 3},
            ),
        )
        self.files: dict[str, dict] = {}
        self.uploads: dict[str, Upload] = {}
        for bucket in s3["buckets"].values():
            try:
                self.client.create_bucket(Bucket=bucket)
            except self.client.exceptions.BucketAlreadyOwnedByYou:
                pass
        self.timeout = timeout

    def s3_info(self) -> dict:
        return self.s3

    def register(self, file_id, size, sha256):
        self.files[file_id] = {"size": size, "sha256": sha256}

    def delete(self, file_id):
        for role in ("inbox", "permanent", "outbox"):
            self.client.delete_object(Bucket=self.s3["buckets"][role], Key=file_id)
        self.files.pop(file_id, None)

    def begin_upload(self, file_id):
        size = self.files[file_id]["size"]
        resp = self.client.create_multipart_upload(Bucket=self.s3["buckets"]["inbox"], Key=file_id)
        up = Upload(resp["UploadId"], file_id, upload_part_size(size))
        self.uploads[file_id] = up
        return up

    def part_url(self, up, part_no):
        return self.client.generate_presigned_url(
            "upload_part",
            ExpiresIn=3600,
            Params={
                "Bucket": self.s3["buckets"]["inbox"],
                "Key": up.file_id,
                "UploadId": up.upload_id,
                "PartNumber": part_no,
            },
        )

    def complete(self, up, path):
        bucket = self.s3["buckets"]["inbox"]
        parts = self.client.list_parts(
            Bucket=bucket, Key=up.file_id, UploadId=up.upload_id, MaxParts=1000
        )["Parts"]
        self.client.complete_multipart_upload(
            Bucket=bucket,
            Key=up.file_id,
            UploadId=up.upload_id,
            MultipartUpload={
                "Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]
            },
        )

    def seed(self, file_id, path, sha256, state_dir):
        """Straight into the inbox bucket, part by part (no Upload API for ghga-cli here)."""
        size = path.stat().st_size
        self.register(file_id, size, sha256)
        up = self.begin_upload(file_id)
        for n, off in enumerate(range(0, size, up.part_size), start=1):
            put_range(self.part_url(up, n), path, off, min(up.part_size, size - off))
        self.complete(up, path)
        if not self.wait_accepted(file_id, sha256, acceptance_deadline(size)):
            raise ApiError(f"seeded {file_id} was not accepted")

    def wait_accepted(self, file_id, sha256, deadline=600.0):
        got = self.object_sha256(self.s3["buckets"]["inbox"], file_id)
        if got != sha256:
            return False
        self.client.copy_object(
            Bucket=self.s3["buckets"]["permanent"],
            Key=file_id,
            CopySource={"Bucket": self.s3["buckets"]["inbox"], "Key": file_id},
        )
        self.client.delete_object(Bucket=self.s3["buckets"]["inbox"], Key=file_id)
        return True

    def latest_upload_status(self, file_id):
        return "uploaded" if file_id in self.uploads else "none"

    def drs_object(self, file_id, deadline=600.0):
        url = self.client.generate_presigned_url(
            "get_object",
            ExpiresIn=3600,
            Params={"Bucket": self.s3["buckets"]["permanent"], "Key": file_id},
        )
        meta = self.files[file_id]
        return {
            "id": file_id,
            "size": meta["size"],
            "checksums": [{"type": "sha-256", "checksum": meta["sha256"]}],
            "access_methods": [{"type": "s3", "access_url": {"url": url}}],
        }

    def object_sha256(self, bucket: str, key: str) -> str:
        return s3_object_sha256(self.client, bucket, key)


def s3_client(s3: dict):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=s3["endpoint"],
        aws_access_key_id=s3["access_key"],
        aws_secret_access_key=s3["secret_key"],
        region_name=s3.get("region") or "us-east-1",
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )


def s3_object_sha256(client, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    for chunk in iter(lambda: body.read(8 * MiB), b""):
        digest.update(chunk)
    return digest.hexdigest()


PEER_BUCKET = "bench"


def empty_peer_bucket(s3: dict) -> str:
    """The bucket the S3 peers (s5cmd, aws, rclone, CRT) upload into, made and emptied.

    Not the server's inbox: the reference server aborts every inbox multipart upload no
    attempt of its own owns (`ghga-cli serve --orphan-sweep`), so a peer's upload longer
    than the sweep interval would fail. Emptied at each start: no run is in flight then."""
    client = s3_client(s3)
    try:
        client.create_bucket(Bucket=PEER_BUCKET)
    except (client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=PEER_BUCKET):
            for up in page.get("Uploads", []):
                client.abort_multipart_upload(
                    Bucket=PEER_BUCKET, Key=up["Key"], UploadId=up["UploadId"]
                )
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=PEER_BUCKET):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=PEER_BUCKET, Key=obj["Key"])
    return PEER_BUCKET
