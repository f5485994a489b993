"""Upload attempts: start, sign parts, complete or cancel; then accept in the background.

pending --PATCH uploaded--> uploaded --(SHA-256, move to permanent)--> accepted | rejected
pending --PATCH uploaded, checks fail--> failed (S3 upload aborted)
pending --PATCH cancelled--> cancelled (S3 upload aborted)
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
import uuid
from typing import List, Optional, Tuple

from ..parts import part_count, upload_part_size
from .context import Context, upload_attempt
from .db import UploadRow
from .errors import (
    ApiError,
    file_not_registered,
    no_such_upload,
    upload_not_pending,
    upload_status_change,
)
from .storage import StoredPart, error_code, is_missing
from .worker import retrying

log = logging.getLogger("ghga_tasks.server.uploads")

MD5_HEX = re.compile(r"[0-9a-f]{32}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def get_attempt(core: Context, upload_id: str) -> UploadRow:
    row = core.db.get_upload(upload_id)
    if row is None:
        raise no_such_upload(upload_id)
    return row


def start(core: Context, file_id: str, writer: Optional[str] = None) -> UploadRow:
    """Start an attempt: one S3 multipart upload in the inbox."""
    with core.file_lock(file_id):
        meta = core.db.get_file(file_id)
        if meta is None:
            raise file_not_registered(file_id, status=400)
        active = core.db.active_upload(file_id)
        if active is not None:
            raise ApiError(
                400,
                "existingActiveUpload",
                f"The file {file_id!r} already has an upload attempt that is {active.status}.",
                {"file_id": file_id, "active_upload": upload_attempt(active)},
            )
        key = f"{file_id}/{uuid.uuid4().hex}"
        upload_id = core.storage.create_upload(key)
        now = time.time()
        row = UploadRow(
            upload_id,
            file_id,
            upload_part_size(meta.size),
            "pending",
            key,
            now,
            now,
            None,
            writer=writer,
            writer_seen=now if writer else None,
        )
        try:
            core.db.add_upload(row)
        except BaseException:
            core.storage.abort("inbox", key, upload_id)
            raise
    log.info("upload %s of %s started (part size %d)", upload_id, file_id, row.part_size)
    return row


def claim(core: Context, row: UploadRow, writer: Optional[str]) -> None:
    """Refuse a second client while the attempt's writer is active (PROTOCOL.md § 1)."""
    if writer is None:
        return
    lease = core.knobs.get().writer_lease
    now = time.time()
    # the writer's last request is recorded to within a tenth of the lease (a second at
    # most), not once per part URL: most requests of the holder then write nothing
    if row.writer == writer and now - (row.writer_seen or 0) < min(1.0, lease / 10):
        return
    holder = core.db.claim(row.upload_id, writer, now, lease)
    if holder is not None:
        idle = now - (holder.writer_seen or now)
        wait = max(1, math.ceil(lease - idle))
        raise ApiError(
            409,
            "uploadInProgress",
            f"Another client is writing upload attempt {row.upload_id!r} (it last "
            f"asked for a part URL {idle:.0f} s ago); it can be taken over after "
            f"{wait} s without activity.",
            {"upload_id": row.upload_id, "retry_after": wait},
        )


def sign_part(core: Context, upload_id: str, part_no: int, writer: Optional[str] = None) -> str:
    row = get_attempt(core, upload_id)
    if row.status != "pending":
        raise upload_not_pending(upload_id, row.status)
    claim(core, row, writer)
    return core.storage.presign_part(
        row.inbox_key, upload_id, part_no, core.knobs.get().url_lifetime
    )


def check_confirmation(
    parts_md5: Optional[List[str]], sha256: Optional[str], count: int, upload_id: str
) -> None:
    """The confirmation names one MD5 per part and the file's SHA-256, as lower-case hex."""
    problems = []
    if parts_md5 is None:
        problems.append("parts_md5 is missing")
    elif len(parts_md5) != count:
        problems.append(f"parts_md5 has {len(parts_md5)} entries for {count} parts")
    elif not all(isinstance(m, str) and MD5_HEX.fullmatch(m) for m in parts_md5):
        problems.append("parts_md5 entries must be 32 lower-case hex digits")
    if not isinstance(sha256, str) or not SHA256_HEX.fullmatch(sha256):
        problems.append("sha256 must be 64 lower-case hex digits")
    if problems:
        raise ApiError(
            422,
            "invalidConfirmation",
            f"Cannot confirm upload attempt {upload_id!r}: {'; '.join(problems)}.",
            {"upload_id": upload_id},
        )


def select_parts(
    parts: List[StoredPart], parts_md5: List[str]
) -> Tuple[List[StoredPart], List[int]]:
    """For each part number, the stored version whose ETag is the MD5 the client verified.

    An S3 store may keep every upload of a part number (SeaweedFS does); completion must use
    exactly the bytes the client checked. Returns (chosen parts, numbers with no such version).
    Part numbers beyond the file's are left out of the completion.
    """
    by_etag = {(p.number, p.etag.strip('"').lower()): p for p in parts}
    chosen, unmatched = [], []
    for number, md5 in enumerate(parts_md5, start=1):
        part = by_etag.get((number, md5))
        if part is None:
            unmatched.append(number)
        else:
            chosen.append(part)
    if len({p.number for p in parts}) < len(parts):
        log.info(
            "ListParts returned %d entries for %d part numbers",
            len(parts),
            len({p.number for p in parts}),
        )
    return chosen, unmatched


def composite_etag(parts_md5: List[str]) -> str:
    """The ETag S3 gives a completed multipart object: MD5 of the parts' MD5s, "-N"."""
    joined = b"".join(bytes.fromhex(m) for m in parts_md5)
    return f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(parts_md5)}"


def check_parts(parts: List[StoredPart], size: int, part_size: int) -> Optional[str]:
    """Why the chosen parts do not make up the registered file, or None when they do."""
    count = part_count(size, part_size)
    for p in parts:
        want = part_size if p.number < count else size - (count - 1) * part_size
        if p.size != want:
            return f"part {p.number} has {p.size} bytes, expected {want}"
    total = sum(p.size for p in parts)
    if total != size:
        return f"parts sum to {total} bytes, registered size is {size}"
    return None


def complete(
    core: Context,
    upload_id: str,
    parts_md5: Optional[List[str]],
    sha256: Optional[str],
    writer: Optional[str] = None,
) -> None:
    """PATCH status uploaded: choose the verified parts, complete the S3 upload, check the
    object's ETag, queue acceptance."""
    file_id = get_attempt(core, upload_id).file_id
    with core.file_lock(file_id):
        row = get_attempt(core, upload_id)
        if row.status != "pending":
            raise upload_not_pending(upload_id, row.status)
        meta = core.db.get_file(file_id)
        check_confirmation(parts_md5, sha256, part_count(meta.size, row.part_size), upload_id)
        claim(core, row, writer)
        page = core.knobs.get().list_parts_page_size
        try:
            stored = core.storage.list_parts(row.inbox_key, upload_id, page)
        except Exception as exc:  # noqa: BLE001 - only a vanished upload is handled here
            if not is_missing(exc):
                raise
            # Completed just before a crash? Then the object is there.
            if core.storage.head("inbox", row.inbox_key) == meta.size:
                _check_object(core, row, parts_md5)
                _mark_uploaded(core, row, sha256)
                return
            _fail(core, row, "the S3 multipart upload no longer exists")
        chosen, unmatched = select_parts(stored, parts_md5)
        if unmatched:  # the attempt stays pending: the client sends these parts again
            shown = ", ".join(map(str, unmatched[:10])) + (", ..." if len(unmatched) > 10 else "")
            raise ApiError(
                400,
                "partsNotStored",
                f"{len(unmatched)} of {len(parts_md5)} parts are not stored with "
                f"the MD5 the client sent (part {shown}); upload them again.",
                {"upload_id": upload_id, "parts": unmatched},
            )
        reason = check_parts(chosen, meta.size, row.part_size)
        if reason:
            _fail(core, row, reason)
        try:
            core.storage.complete(row.inbox_key, upload_id, chosen)
        except Exception as exc:  # noqa: BLE001
            code = error_code(exc)
            if code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall", "NoSuchUpload"):
                _fail(core, row, f"S3 refused to complete the upload ({code})")
            raise
        _check_object(core, row, parts_md5)
        _mark_uploaded(core, row, sha256)


def _check_object(core: Context, row: UploadRow, parts_md5: List[str]) -> None:
    """The completed object must be made of the confirmed parts (its ETag says so)."""
    got = core.storage.etag("inbox", row.inbox_key)
    want = composite_etag(parts_md5)
    if got and got != want:
        core.storage.delete("inbox", row.inbox_key)
        _fail(
            core,
            row,
            f"the completed object has ETag {got}, expected {want} from the confirmed parts",
        )


def _mark_uploaded(core: Context, row: UploadRow, sha256: str) -> None:
    core.db.set_confirmed(row.upload_id, sha256, time.time())
    log.info("upload %s of %s completed", row.upload_id, row.file_id)
    submit_acceptance(core, row.upload_id)


def _fail(core: Context, row: UploadRow, reason: str) -> None:
    """Abort the S3 upload, mark the attempt failed, answer 400 uploadStatusChange."""
    try:
        core.storage.abort("inbox", row.inbox_key, row.upload_id)
    finally:  # if the abort fails, the record still names it; recover() retries at start
        core.db.set_status(row.upload_id, "failed", time.time(), expect=("pending",), reason=reason)
        log.info("upload %s of %s failed: %s", row.upload_id, row.file_id, reason)
    raise upload_status_change(row.upload_id, reason)


def cancel(core: Context, upload_id: str) -> None:
    """PATCH status cancelled: abort the S3 upload."""
    file_id = get_attempt(core, upload_id).file_id
    with core.file_lock(file_id):
        row = get_attempt(core, upload_id)
        if row.status != "pending":
            raise upload_not_pending(upload_id, row.status)
        core.storage.abort("inbox", row.inbox_key, upload_id)
        core.db.set_status(upload_id, "cancelled", time.time(), expect=("pending",))
    log.info("upload %s of %s cancelled", upload_id, file_id)


# background acceptance


def submit_acceptance(core: Context, upload_id: str) -> None:
    core.worker.submit(f"acceptance of upload {upload_id}", accept, core, upload_id)


def accept(core: Context, upload_id: str) -> None:
    """Hash the completed object, compare, move it to permanent storage."""
    delay = core.settings.accept_delay
    if delay and core.stop_event.wait(delay):
        return
    row = core.db.get_upload(upload_id)
    if row is None or row.status != "uploaded":
        return
    meta = core.db.get_file(row.file_id)
    storage, stop = core.storage, core.stop_event
    try:
        checksum, size = retrying(
            lambda: storage.sha256("inbox", row.inbox_key, stop),
            stop,
            f"hashing upload {upload_id}",
            permanent=is_missing,
        )
    except Exception as exc:  # noqa: BLE001
        if not is_missing(exc):
            raise
        core.db.set_status(
            upload_id,
            "failed",
            time.time(),
            expect=("uploaded",),
            reason="the uploaded object is missing from the inbox",
        )
        log.error("upload %s of %s: object missing from the inbox", upload_id, row.file_id)
        return
    reason = None
    if size != meta.size:
        reason = f"size {size} differs from the registered {meta.size}"
    elif row.sha256 and checksum != row.sha256:
        reason = f"SHA-256 {checksum} differs from the {row.sha256} the client confirmed"
    elif meta.sha256 and checksum != meta.sha256:
        reason = f"SHA-256 {checksum} differs from the registered {meta.sha256}"
    if reason:
        core.db.set_status(upload_id, "rejected", time.time(), expect=("uploaded",), reason=reason)
        storage.delete("inbox", row.inbox_key)
        log.warning("upload %s of %s rejected: %s", upload_id, row.file_id, reason)
        return
    retrying(
        lambda: storage.copy(
            ("inbox", row.inbox_key),
            ("permanent", row.file_id),
            size,
            core.settings.copy_threshold,
            stop,
        ),
        stop,
        f"moving upload {upload_id} to permanent storage",
    )
    with core.file_lock(row.file_id):
        accepted = core.db.accept(upload_id, checksum, time.time())
        if not accepted:  # deleted meanwhile: undo the copy
            storage.delete("permanent", row.file_id)
    storage.delete("inbox", row.inbox_key)
    if accepted:
        log.info("upload %s of %s accepted (sha256 %s)", upload_id, row.file_id, checksum)
