"""The S3 side of the server: buckets, multipart uploads, pre-signed URLs, copies, hashing.

Pre-signed URLs are credentials: nothing here logs them.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .config import S3Settings, copy_ranges

log = logging.getLogger("ghga_tasks.server.storage")

CHUNK = 1024 * 1024
MISSING = ("404", "NoSuchKey", "NotFound", "NoSuchUpload", "NoSuchBucket")
DENIED = ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden")


class StoredPart(NamedTuple):
    number: int
    size: int
    etag: str
    modified: float = 0.0  # LastModified, seconds since the epoch


class Stopped(Exception):
    """Background work was interrupted because the server is stopping."""


def is_missing(exc: BaseException) -> bool:
    """True for S3's 'no such key / upload / bucket' answers."""
    return (
        isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code")) in MISSING
    )


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code"))
    return type(exc).__name__


def _client(session, s3: S3Settings, read_timeout: int, retries: int):
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        connect_timeout=5,
        read_timeout=read_timeout,
        retries={"mode": "standard", "max_attempts": retries},
        max_pool_connections=50,
    )
    return session.client(
        "s3",
        endpoint_url=s3.endpoint,
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
        region_name=s3.region,
        config=config,
    )


class Storage:
    """Thin wrapper over one S3 store with three logical buckets."""

    def __init__(self, s3: S3Settings, buckets: Dict[str, str]):
        self.settings = s3
        self.buckets = dict(buckets)
        session = boto3.session.Session()
        self.api = _client(session, s3, read_timeout=60, retries=3)  # request path
        self.bulk = _client(session, s3, read_timeout=900, retries=5)  # background copies, hashing

    def bucket(self, name: str) -> str:
        return self.buckets[name]

    def ensure_buckets(self, deadline: float, retry_denied: bool = False) -> None:
        """Create missing buckets, retrying until `deadline` (a store may still be starting).

        Wrong credentials fail at once unless `retry_denied` (a store we just started).
        """
        for name in self.buckets.values():
            while True:
                try:
                    self._ensure_bucket(name)
                    break
                except (BotoCoreError, ClientError) as exc:
                    denied = error_code(exc) in DENIED
                    if time.monotonic() > deadline or (denied and not retry_denied):
                        raise
                    log.debug("bucket %s not ready yet: %s", name, error_code(exc))
                    time.sleep(0.2)

    def _ensure_bucket(self, name: str) -> None:
        try:
            self.api.head_bucket(Bucket=name)
            return
        except ClientError as exc:
            if not is_missing(exc):
                raise
        args = {"Bucket": name}
        if self.settings.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.settings.region}
        try:
            self.api.create_bucket(**args)
            log.info("created bucket %s", name)
        except ClientError as exc:
            if error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    # multipart uploads into the inbox

    def create_upload(self, key: str) -> str:
        return self.api.create_multipart_upload(Bucket=self.bucket("inbox"), Key=key)["UploadId"]

    def presign_part(self, key: str, upload_id: str, part_no: int, lifetime: int) -> str:
        return self.api.generate_presigned_url(
            "upload_part",
            ExpiresIn=lifetime,
            HttpMethod="PUT",
            Params={
                "Bucket": self.bucket("inbox"),
                "Key": key,
                "UploadId": upload_id,
                "PartNumber": part_no,
            },
        )

    def list_parts(self, key: str, upload_id: str, page_size: int) -> List[StoredPart]:
        """All parts of an upload, one ListParts page of `page_size` at a time."""
        parts: List[StoredPart] = []
        marker = 0
        for _ in range(100_000):  # bounded: 10,000 parts at >= 1 a page
            page = self.api.list_parts(
                Bucket=self.bucket("inbox"),
                Key=key,
                UploadId=upload_id,
                MaxParts=page_size,
                PartNumberMarker=marker,
            )
            parts.extend(
                StoredPart(
                    p["PartNumber"],
                    p["Size"],
                    p["ETag"],
                    p["LastModified"].timestamp() if "LastModified" in p else 0.0,
                )
                for p in page.get("Parts", [])
            )
            if not page.get("IsTruncated"):
                return parts
            next_marker = int(page.get("NextPartNumberMarker") or 0)
            if next_marker <= marker:
                raise RuntimeError("ListParts did not advance")
            marker = next_marker
        raise RuntimeError("ListParts did not end")

    def complete(self, key: str, upload_id: str, parts: List[StoredPart]) -> None:
        self.api.complete_multipart_upload(
            Bucket=self.bucket("inbox"),
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]},
        )

    def abort(self, bucket: str, key: str, upload_id: str) -> None:
        """Abort a multipart upload; one that is already gone is fine."""
        try:
            self.api.abort_multipart_upload(Bucket=self.bucket(bucket), Key=key, UploadId=upload_id)
        except ClientError as exc:
            if not is_missing(exc):
                raise

    def multipart_uploads(self, bucket: str, prefix: str = "") -> List[Tuple[str, str, float]]:
        """(key, upload_id, initiated) of every unfinished multipart upload in a bucket."""
        out: List[Tuple[str, str, float]] = []
        args = {"Bucket": self.bucket(bucket), "Prefix": prefix}
        for _ in range(100_000):
            page = self.api.list_multipart_uploads(**args)
            out.extend(
                (u["Key"], u["UploadId"], u["Initiated"].timestamp() if "Initiated" in u else 0.0)
                for u in page.get("Uploads", []) or []
            )
            if not page.get("IsTruncated"):
                return out
            args["KeyMarker"] = page.get("NextKeyMarker", "")
            args["UploadIdMarker"] = page.get("NextUploadIdMarker", "")
        raise RuntimeError("ListMultipartUploads did not end")

    # objects

    def head(self, bucket: str, key: str) -> Optional[int]:
        """Size of an object, or None when it does not exist."""
        try:
            return self.api.head_object(Bucket=self.bucket(bucket), Key=key)["ContentLength"]
        except ClientError as exc:
            if is_missing(exc):
                return None
            raise

    def etag(self, bucket: str, key: str) -> str:
        """The object's ETag without quotes, lower case ("" when the store gives none)."""
        return (
            self.api.head_object(Bucket=self.bucket(bucket), Key=key)
            .get("ETag", "")
            .strip('"')
            .lower()
        )

    def presign_get(self, bucket: str, key: str, lifetime: int) -> str:
        return self.api.generate_presigned_url(
            "get_object",
            ExpiresIn=lifetime,
            HttpMethod="GET",
            Params={"Bucket": self.bucket(bucket), "Key": key},
        )

    def delete(self, bucket: str, key: str) -> None:
        try:
            self.api.delete_object(Bucket=self.bucket(bucket), Key=key)
        except ClientError as exc:
            if not is_missing(exc):
                raise

    def keys(self, bucket: str, prefix: str) -> Iterator[str]:
        args = {"Bucket": self.bucket(bucket), "Prefix": prefix}
        for _ in range(100_000):
            page = self.api.list_objects_v2(**args)
            for item in page.get("Contents", []) or []:
                yield item["Key"]
            if not page.get("IsTruncated"):
                return
            args["ContinuationToken"] = page["NextContinuationToken"]

    def sha256(self, bucket: str, key: str, stop: threading.Event) -> Tuple[str, int]:
        """SHA-256 hex and size of an object, streamed in 1 MiB chunks."""
        body = self.bulk.get_object(Bucket=self.bucket(bucket), Key=key)["Body"]
        digest = hashlib.sha256()
        size = 0
        try:
            for chunk in body.iter_chunks(CHUNK):
                if stop.is_set():
                    raise Stopped()
                digest.update(chunk)
                size += len(chunk)
        finally:
            body.close()
        return digest.hexdigest(), size

    def copy(
        self,
        src: Tuple[str, str],
        dst: Tuple[str, str],
        size: int,
        threshold: int,
        stop: threading.Event,
    ) -> None:
        """Copy src=(bucket, key) to dst=(bucket, key) inside the store.

        Objects larger than `threshold` bytes go part by part (UploadPartCopy):
        CopyObject refuses sources over 5 GB.
        """
        source = {"Bucket": self.bucket(src[0]), "Key": src[1]}
        bucket, key = self.bucket(dst[0]), dst[1]
        if size <= threshold:
            self.bulk.copy_object(Bucket=bucket, Key=key, CopySource=source)
            return
        upload_id = self.bulk.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        try:
            parts = []
            for number, (first, last) in enumerate(copy_ranges(size, threshold), 1):
                if stop.is_set():
                    raise Stopped()
                answer = self.bulk.upload_part_copy(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=source,
                    CopySourceRange=f"bytes={first}-{last}",
                )
                parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
            self.bulk.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
            log.info(
                "multipart copy %s/%s -> %s/%s: %d parts",
                source["Bucket"],
                src[1],
                bucket,
                key,
                len(parts),
            )
        except BaseException:
            try:
                self.bulk.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except (BotoCoreError, ClientError) as exc:
                log.warning(
                    "could not abort copy upload of %s/%s: %s", bucket, key, error_code(exc)
                )
            raise
