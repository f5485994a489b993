"""What every operation of the server works on, and how the APIs show its rows.

`Context` holds the settings, storage, database, knobs, background worker and one lock per
file. core.py (lifecycle, registered files), uploads.py and outbox.py operate on it.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Dict, Iterator, Tuple

from .config import KnobBox, Settings
from .db import Database, FileRow, UploadRow
from .storage import Storage
from .worker import Worker


class KeyedLocks:
    """One lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: Dict[str, Tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (None, 0))
            lock = lock or threading.Lock()
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


class Context:
    """The server's state; every operation takes it as its first argument, `core`."""

    def __init__(self, settings: Settings, storage: Storage, db: Database, knobs: KnobBox):
        self.settings = settings
        self.storage = storage
        self.db = db
        self.knobs = knobs
        self.stop_event = threading.Event()
        self.worker = Worker(settings.workers, self.stop_event)
        self.locks = KeyedLocks()

    def file_lock(self, file_id: str):
        return self.locks.hold(file_id)


def file_metadata(row: FileRow) -> Dict[str, Any]:
    return {
        "file_id": row.file_id,
        "file_name": row.file_name,
        "size": row.size,
        "sha256": row.sha256,
        "latest_upload_id": row.latest_upload_id,
    }


def upload_attempt(row: UploadRow) -> Dict[str, Any]:
    return {
        "upload_id": row.upload_id,
        "file_id": row.file_id,
        "part_size": row.part_size,
        "status": row.status,
        "sha256": row.sha256,
    }


def rfc3339(ts: float) -> str:
    """UTC with microseconds: a file accepted within the second its source was written in
    is still newer than that source (Snakemake compares the two)."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
