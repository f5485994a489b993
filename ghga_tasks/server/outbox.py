"""The download side: staging accepted files into the outbox, eviction, DRS objects.

outbox entry: (none) --GET object--> staging --copy done--> staged (ready after
staging_delay) --outbox_lifetime after ready--> (none: evicted, object deleted)
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, Optional

from .context import Context, rfc3339
from .db import OutboxRow
from .errors import no_such_object
from .worker import retrying

log = logging.getLogger("ghga_tasks.server.outbox")


def drs_object(core: Context, object_id: str, host: str) -> Optional[Dict[str, Any]]:
    """The DrsObject of an accepted file, or None while it is being staged (202)."""
    meta = core.db.get_file(object_id)
    if meta is None or meta.checksum is None:
        raise no_such_object(object_id)
    knobs = core.knobs.get()
    with core.file_lock(object_id):
        now = time.time()
        row = core.db.get_outbox(object_id)
        if row is not None and row.state == "staged":
            if _expired(row, knobs.outbox_lifetime, now):
                _evict(core, row)
                row = None
            elif row.ready_at > now:
                return None
            elif core.storage.head("outbox", object_id) is None:
                log.warning("%s vanished from the outbox; staging it again", object_id)
                core.db.remove_outbox(object_id, only_if=row)
                row = None
            else:
                url = core.storage.presign_get("outbox", object_id, knobs.url_lifetime)
                return {
                    "id": meta.file_id,
                    "name": meta.file_name,
                    "self_uri": f"drs://{host}/{meta.file_id}",
                    "size": meta.size,
                    "created_time": rfc3339(meta.accepted_at),
                    "checksums": [{"type": "sha-256", "checksum": meta.checksum}],
                    "access_methods": [{"type": "s3", "access_url": {"url": url}}],
                }
        if row is None:
            row, created = core.db.request_staging(object_id, now, knobs.staging_delay)
            if created:
                submit_staging(core, row)
    return None


def submit_staging(core: Context, row: OutboxRow) -> None:
    core.worker.submit(f"staging of {row.file_id}", stage, core, row)


def stage(core: Context, row: OutboxRow) -> None:
    """Copy a file from permanent storage into the outbox."""
    meta = core.db.get_file(row.file_id)
    if meta is None or meta.checksum is None or core.db.get_outbox(row.file_id) != row:
        return
    stop = core.stop_event
    try:
        retrying(
            lambda: core.storage.copy(
                ("permanent", row.file_id),
                ("outbox", row.file_id),
                meta.size,
                core.settings.copy_threshold,
                stop,
            ),
            stop,
            f"staging {row.file_id}",
        )
    except Exception:
        core.db.remove_outbox(row.file_id, only_if=row)  # the next request starts over
        raise
    with core.file_lock(row.file_id):
        if not core.db.set_staged(row.file_id, row.requested_at, time.time() + row.delay):
            core.storage.delete("outbox", row.file_id)  # deleted meanwhile
            return
    log.info("staged %s", row.file_id)


def _expired(row: OutboxRow, lifetime: Optional[float], now: float) -> bool:
    return (
        lifetime is not None
        and row.state == "staged"
        and row.ready_at is not None
        and now >= row.ready_at + lifetime
    )


def _evict(core: Context, row: OutboxRow) -> None:
    """Remove a staged file from the outbox (caller holds the file lock)."""
    if core.db.remove_outbox(row.file_id, only_if=row):
        core.storage.delete("outbox", row.file_id)
        log.info("evicted %s from the outbox", row.file_id)


def evict_expired(core: Context) -> None:
    """Periodic sweep: evict staged files older than outbox_lifetime."""
    lifetime = core.knobs.get().outbox_lifetime
    if lifetime is None:
        return
    now = time.time()
    for row in core.db.outbox_rows("staged"):
        if _expired(row, lifetime, now):
            with core.file_lock(row.file_id):
                _evict(core, row)
