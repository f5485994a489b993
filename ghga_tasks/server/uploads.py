"""Upload attempts: start, sign parts, complete or cancel; then accept in the background.

pending --PATCH uploaded--> uploaded --(SHA-256, move to permanent)--> accepted | rejected
pending --PATCH uploaded, checks fail--> failed (S3 upload aborted)
pending --PATCH cancelled--> cancelled (S3 upload aborted)
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Dict, List, Optional

from .config import part_count, part_size_for
from .core import Core, upload_attempt
from .db import UploadRow
from .errors import (ApiError, file_not_registered, no_such_upload, upload_not_pending,
                     upload_status_change)
from .storage import StoredPart, error_code, is_missing
from .worker import retrying

log = logging.getLogger("ghga_tasks.server.uploads")


def get_attempt(core: Core, upload_id: str) -> UploadRow:
    row = core.db.get_upload(upload_id)
    if row is None:
        raise no_such_upload(upload_id)
    return row


def start(core: Core, file_id: str) -> UploadRow:
    """Start an attempt: one S3 multipart upload in the inbox."""
    with core.file_lock(file_id):
        meta = core.db.get_file(file_id)
        if meta is None:
            raise file_not_registered(file_id, status=400)
        active = core.db.active_upload(file_id)
        if active is not None:
            raise ApiError(400, "existingActiveUpload",
                           f"The file {file_id!r} already has an upload attempt that is "
                           f"{active.status}.",
                           {"file_id": file_id, "active_upload": upload_attempt(active)})
        key = f"{file_id}/{uuid.uuid4().hex}"
        upload_id = core.storage.create_upload(key)
        now = time.time()
        row = UploadRow(upload_id, file_id, part_size_for(meta.size), "pending", key, now, now,
                        None)
        try:
            core.db.add_upload(row)
        except BaseException:
            core.storage.abort("inbox", key, upload_id)
            raise
    log.info("upload %s of %s started (part size %d)", upload_id, file_id, row.part_size)
    return row


def sign_part(core: Core, upload_id: str, part_no: int) -> str:
    row = get_attempt(core, upload_id)
    if row.status != "pending":
        raise upload_not_pending(upload_id, row.status)
    return core.storage.presign_part(row.inbox_key, upload_id, part_no,
                                     core.knobs.get().url_lifetime)


def latest_versions(parts: List[StoredPart], size: int, part_size: int) -> List[StoredPart]:
    """One entry per part number, sorted.

    SeaweedFS lists every upload of a part number, not just the last one. Take the newest
    (LastModified has 1 s resolution: on a tie prefer the expected size, then any).
    """
    count = part_count(size, part_size)
    best: Dict[int, StoredPart] = {}
    for p in parts:
        want = part_size if p.number < count else size - (count - 1) * part_size
        old = best.get(p.number)
        if old is None or (p.modified, p.size == want) > (old.modified, old.size == want):
            best[p.number] = p
    if len(best) < len(parts):
        log.info("ListParts returned %d entries for %d part numbers", len(parts), len(best))
    return [best[n] for n in sorted(best)]


def check_parts(parts: List[StoredPart], size: int, part_size: int) -> Optional[str]:
    """Why the stored parts do not make up the registered file, or None when they do."""
    count = part_count(size, part_size)
    numbers = {p.number for p in parts}
    missing = [n for n in range(1, count + 1) if n not in numbers]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        return f"{len(missing)} of {count} parts missing (part {shown})"
    extra = sorted(n for n in numbers if n > count)
    if extra:
        return f"unexpected part {extra[0]}: the file has {count} parts"
    for p in parts:
        want = part_size if p.number < count else size - (count - 1) * part_size
        if p.size != want:
            return f"part {p.number} has {p.size} bytes, expected {want}"
    total = sum(p.size for p in parts)
    if total != size:
        return f"parts sum to {total} bytes, registered size is {size}"
    return None


def complete(core: Core, upload_id: str) -> None:
    """PATCH status uploaded: check the parts, complete the S3 upload, queue acceptance."""
    file_id = get_attempt(core, upload_id).file_id
    with core.file_lock(file_id):
        row = get_attempt(core, upload_id)
        if row.status != "pending":
            raise upload_not_pending(upload_id, row.status)
        meta = core.db.get_file(file_id)
        page = core.knobs.get().list_parts_page_size
        try:
            parts = core.storage.list_parts(row.inbox_key, upload_id, page)
        except Exception as exc:  # noqa: BLE001 - only a vanished upload is handled here
            if not is_missing(exc):
                raise
            # Completed just before a crash? Then the object is there.
            if core.storage.head("inbox", row.inbox_key) == meta.size:
                _mark_uploaded(core, row)
                return
            _fail(core, row, "the S3 multipart upload no longer exists")
        parts = latest_versions(parts, meta.size, row.part_size)
        reason = check_parts(parts, meta.size, row.part_size)
        if reason:
            _fail(core, row, reason)
        try:
            core.storage.complete(row.inbox_key, upload_id, parts)
        except Exception as exc:  # noqa: BLE001
            code = error_code(exc)
            if code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall", "NoSuchUpload"):
                _fail(core, row, f"S3 refused to complete the upload ({code})")
            raise
        _mark_uploaded(core, row)


def _mark_uploaded(core: Core, row: UploadRow) -> None:
    core.db.set_status(row.upload_id, "uploaded", time.time(), expect=("pending",))
    log.info("upload %s of %s completed", row.upload_id, row.file_id)
    submit_acceptance(core, row.upload_id)


def _fail(core: Core, row: UploadRow, reason: str) -> None:
    """Abort the S3 upload, mark the attempt failed, answer 400 uploadStatusChange."""
    try:
        core.storage.abort("inbox", row.inbox_key, row.upload_id)
    finally:  # if the abort fails, the record still names it; recover() retries at start
        core.db.set_status(row.upload_id, "failed", time.time(), expect=("pending",),
                           reason=reason)
        log.info("upload %s of %s failed: %s", row.upload_id, row.file_id, reason)
    raise upload_status_change(row.upload_id, reason)


def cancel(core: Core, upload_id: str) -> None:
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

def submit_acceptance(core: Core, upload_id: str) -> None:
    core.worker.submit(f"acceptance of upload {upload_id}", accept, core, upload_id)


def accept(core: Core, upload_id: str) -> None:
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
        checksum, size = retrying(lambda: storage.sha256("inbox", row.inbox_key, stop), stop,
                                  f"hashing upload {upload_id}", permanent=is_missing)
    except Exception as exc:  # noqa: BLE001
        if not is_missing(exc):
            raise
        core.db.set_status(upload_id, "failed", time.time(), expect=("uploaded",),
                           reason="the uploaded object is missing from the inbox")
        log.error("upload %s of %s: object missing from the inbox", upload_id, row.file_id)
        return
    if size != meta.size or (meta.sha256 and checksum != meta.sha256):
        reason = (f"size {size} differs from the registered {meta.size}" if size != meta.size
                  else f"SHA-256 {checksum} differs from the registered {meta.sha256}")
        core.db.set_status(upload_id, "rejected", time.time(), expect=("uploaded",),
                           reason=reason)
        storage.delete("inbox", row.inbox_key)
        log.warning("upload %s of %s rejected: %s", upload_id, row.file_id, reason)
        return
    retrying(lambda: storage.copy(("inbox", row.inbox_key), ("permanent", row.file_id), size,
                                  core.settings.copy_threshold, stop),
             stop, f"moving upload {upload_id} to permanent storage")
    with core.file_lock(row.file_id):
        accepted = core.db.accept(upload_id, checksum, time.time())
        if not accepted:  # deleted meanwhile: undo the copy
            storage.delete("permanent", row.file_id)
    storage.delete("inbox", row.inbox_key)
    if accepted:
        log.info("upload %s of %s accepted (sha256 %s)", upload_id, row.file_id, checksum)
