"""The server: its lifecycle and the operations on registered files (register, delete, recover).

Upload attempts live in uploads.py, the outbox in outbox.py; both work on its `Context`.
Object keys: inbox `{file_id}/{nonce}` (one per attempt), permanent and outbox `{file_id}`.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, Optional, Tuple

from . import outbox, uploads
from .config import Registration
from .context import Context, file_metadata, rfc3339, upload_attempt
from .db import FileRow
from .errors import ApiError

log = logging.getLogger("ghga_tasks.server")


class Core(Context):
    """The server: its lifecycle (recover, start, stop) and the registered files."""

    # lifecycle

    def start(self) -> None:
        """Resume unfinished background work and start the threads (after recover())."""
        self.worker.every(self.settings.orphan_sweep, self.abort_orphans)
        for row in self.db.uploads_with_status("uploaded"):
            log.info("resuming acceptance of upload %s (file %s)", row.upload_id, row.file_id)
            uploads.submit_acceptance(self, row.upload_id)
        for row in self.db.outbox_rows("staging"):
            log.info("resuming staging of %s", row.file_id)
            outbox.submit_staging(self, row)
        self.worker.every(0.5, lambda: outbox.evict_expired(self))
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()

    def recover(self) -> None:
        """Abort S3 multipart uploads and drop inbox objects that no attempt needs.

        Covers a crash between creating an S3 upload and recording it, and interrupted
        multipart copies into permanent or outbox (only this server writes there).
        """
        storage, db = self.storage, self.db
        self.abort_orphans(min_age=0)
        for bucket in ("permanent", "outbox"):
            for key, upload_id, _ in storage.multipart_uploads(bucket):
                log.info("aborting interrupted multipart copy into %s (key %s)", bucket, key)
                storage.abort(bucket, key, upload_id)
        keep = {
            row.inbox_key
            for status in ("pending", "uploaded")
            for row in db.uploads_with_status(status)
        }
        for key in list(storage.keys("inbox", "")):
            if key not in keep:
                log.info("removing leftover inbox object %s", key)
                storage.delete("inbox", key)

    def abort_orphans(self, min_age: Optional[float] = None) -> None:
        """Abort inbox multipart uploads that no pending attempt owns.

        While serving, only those at least `min_age` seconds old (default: the sweep's
        interval): a new one may not be recorded yet.
        """
        min_age = self.settings.orphan_sweep if min_age is None else min_age
        now = time.time()
        for key, upload_id, initiated in self.storage.multipart_uploads("inbox"):
            row = self.db.get_upload(upload_id)
            if (row is None or row.status != "pending") and now - initiated >= min_age:
                log.info("aborting orphaned multipart upload in inbox (key %s)", key)
                self.storage.abort("inbox", key, upload_id)

    # registered files

    def register(self, reg: Registration) -> Tuple[FileRow, bool]:
        """Register a file; (row, created). The identical registration again is fine."""
        name = reg.file_name or reg.file_id
        sha = reg.sha256.lower() if reg.sha256 else None
        with self.file_lock(reg.file_id):
            old = self.db.get_file(reg.file_id)
            if old is not None:
                if (old.size, old.sha256, old.file_name) == (reg.size, sha, name):
                    return old, False
                raise ApiError(
                    409,
                    "fileAlreadyRegistered",
                    f"The file {reg.file_id!r} is already registered differently.",
                    {"file_id": reg.file_id, "registered": file_metadata(old)},
                )
            row = FileRow(reg.file_id, name, reg.size, sha, time.time(), None, None, None)
            self.db.add_file(row)
        log.info("registered %s (%d bytes)", reg.file_id, reg.size)
        return row, True

    def delete(self, file_id: str) -> None:
        """Forget a file: its records, its objects in all buckets, its multipart uploads."""
        with self.file_lock(file_id):
            removed = self.db.delete_file(file_id)
            for row in removed:
                if row.status == "pending":
                    self.storage.abort("inbox", row.inbox_key, row.upload_id)
            prefix = f"{file_id}/"
            for bucket in ("inbox", "permanent", "outbox"):
                for key, upload_id, _ in self.storage.multipart_uploads(bucket, file_id):
                    if key == file_id or key.startswith(prefix):
                        self.storage.abort(bucket, key, upload_id)
            for key in list(self.storage.keys("inbox", prefix)):
                self.storage.delete("inbox", key)
            self.storage.delete("permanent", file_id)
            self.storage.delete("outbox", file_id)
        log.info("deleted %s", file_id)

    def file_details(self, file_id: str) -> Optional[Dict[str, Any]]:
        """FileMetadata plus the server's view of it (admin API)."""
        row = self.db.get_file(file_id)
        if row is None:
            return None
        out = file_metadata(row)
        staged = self.db.get_outbox(file_id)
        out.update(
            {
                "checksum": row.checksum,
                "accepted_time": rfc3339(row.accepted_at) if row.accepted_at else None,
                "uploads": [
                    dict(upload_attempt(u), reason=u.reason) for u in self.db.uploads_of(file_id)
                ],
                "outbox": None
                if staged is None
                else {
                    "state": staged.state,
                    "ready_time": rfc3339(staged.ready_at) if staged.ready_at else None,
                },
            }
        )
        return out
