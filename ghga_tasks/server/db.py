"""The server's state in SQLite: registered files, upload attempts, staged objects.

One connection shared by all threads behind a lock; every method is one transaction.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

ACTIVE = ("pending", "uploaded", "accepted")

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    file_id TEXT PRIMARY KEY,
    file_name TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT,                 -- registered value, may be NULL
    registered_at REAL NOT NULL,
    latest_upload_id TEXT,
    checksum TEXT,               -- computed SHA-256 of the accepted object
    accepted_at REAL
);
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY,  -- the S3 UploadId
    file_id TEXT NOT NULL,
    part_size INTEGER NOT NULL,
    status TEXT NOT NULL,
    inbox_key TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    reason TEXT,
    sha256 TEXT,                 -- what the client confirmed the attempt with
    writer TEXT,                 -- the client that holds the attempt (opaque id)
    writer_seen REAL             -- when that client last asked for a part URL
);
CREATE INDEX IF NOT EXISTS uploads_by_file ON uploads (file_id);
CREATE TABLE IF NOT EXISTS outbox (
    file_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,         -- staging | staged
    requested_at REAL NOT NULL,
    delay REAL NOT NULL,         -- staging_delay when requested
    ready_at REAL                -- copy done + delay
);
"""


@dataclasses.dataclass(frozen=True)
class FileRow:
    file_id: str
    file_name: str
    size: int
    sha256: Optional[str]
    registered_at: float
    latest_upload_id: Optional[str]
    checksum: Optional[str]
    accepted_at: Optional[float]


@dataclasses.dataclass(frozen=True)
class UploadRow:
    upload_id: str
    file_id: str
    part_size: int
    status: str
    inbox_key: str
    created_at: float
    updated_at: float
    reason: Optional[str]
    sha256: Optional[str] = None
    writer: Optional[str] = None
    writer_seen: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class OutboxRow:
    file_id: str
    state: str
    requested_at: float
    delay: float
    ready_at: Optional[float]


class Database:
    def __init__(self, path: Path):
        self._conn = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=30
        )
        self._lock = threading.RLock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(SCHEMA)
            self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Data dirs of earlier versions: add the upload columns they lack."""
        have = {r[1] for r in self._conn.execute("PRAGMA table_info(uploads)")}
        for column, kind in (("sha256", "TEXT"), ("writer", "TEXT"), ("writer_seen", "REAL")):
            if column not in have:
                self._conn.execute(f"ALTER TABLE uploads ADD COLUMN {column} {kind}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _all(self, sql: str, args: Sequence = ()) -> List[tuple]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    # files

    def add_file(self, row: FileRow) -> None:
        with self._tx() as c:
            c.execute("INSERT INTO files VALUES (?,?,?,?,?,?,?,?)", dataclasses.astuple(row))

    def get_file(self, file_id: str) -> Optional[FileRow]:
        rows = self._all("SELECT * FROM files WHERE file_id = ?", (file_id,))
        return FileRow(*rows[0]) if rows else None

    def list_files(self) -> List[FileRow]:
        return [FileRow(*r) for r in self._all("SELECT * FROM files ORDER BY registered_at")]

    def delete_file(self, file_id: str) -> List[UploadRow]:
        """Remove a file with its attempts and outbox entry; returns the removed attempts."""
        with self._tx() as c:
            uploads = [
                UploadRow(*r)
                for r in c.execute("SELECT * FROM uploads WHERE file_id = ?", (file_id,))
            ]
            c.execute("DELETE FROM uploads WHERE file_id = ?", (file_id,))
            c.execute("DELETE FROM outbox WHERE file_id = ?", (file_id,))
            c.execute("DELETE FROM files WHERE file_id = ?", (file_id,))
        return uploads

    # upload attempts

    def add_upload(self, row: UploadRow) -> None:
        """Insert an attempt and make it the file's latest."""
        with self._tx() as c:
            c.execute(
                "INSERT INTO uploads VALUES (?,?,?,?,?,?,?,?,?,?,?)", dataclasses.astuple(row)
            )
            c.execute(
                "UPDATE files SET latest_upload_id = ? WHERE file_id = ?",
                (row.upload_id, row.file_id),
            )

    def get_upload(self, upload_id: str) -> Optional[UploadRow]:
        rows = self._all("SELECT * FROM uploads WHERE upload_id = ?", (upload_id,))
        return UploadRow(*rows[0]) if rows else None

    def active_upload(self, file_id: str) -> Optional[UploadRow]:
        marks = ",".join("?" * len(ACTIVE))
        rows = self._all(
            f"SELECT * FROM uploads WHERE file_id = ? AND status IN ({marks}) "
            "ORDER BY created_at DESC LIMIT 1",
            (file_id, *ACTIVE),
        )
        return UploadRow(*rows[0]) if rows else None

    def uploads_with_status(self, status: str) -> List[UploadRow]:
        return [
            UploadRow(*r)
            for r in self._all(
                "SELECT * FROM uploads WHERE status = ? ORDER BY updated_at", (status,)
            )
        ]

    def uploads_of(self, file_id: str) -> List[UploadRow]:
        return [
            UploadRow(*r)
            for r in self._all(
                "SELECT * FROM uploads WHERE file_id = ? ORDER BY created_at", (file_id,)
            )
        ]

    def set_status(
        self,
        upload_id: str,
        status: str,
        now: float,
        *,
        expect: Tuple[str, ...],
        reason: Optional[str] = None,
    ) -> bool:
        """Move an attempt to `status` if its status is one of `expect`."""
        marks = ",".join("?" * len(expect))
        with self._tx() as c:
            cur = c.execute(
                f"UPDATE uploads SET status = ?, updated_at = ?, reason = ? "
                f"WHERE upload_id = ? AND status IN ({marks})",
                (status, now, reason, upload_id, *expect),
            )
            return cur.rowcount == 1

    def claim(self, upload_id: str, writer: str, now: float, lease: float) -> Optional[UploadRow]:
        """Make `writer` the attempt's writer unless another one was active within `lease`
        seconds; returns None on success, else the row of the attempt as held by the other."""
        with self._tx() as c:
            rows = c.execute("SELECT * FROM uploads WHERE upload_id = ?", (upload_id,)).fetchall()
            if not rows:
                return None
            row = UploadRow(*rows[0])
            if row.writer not in (None, writer) and now - (row.writer_seen or 0) < lease:
                return row
            c.execute(
                "UPDATE uploads SET writer = ?, writer_seen = ? WHERE upload_id = ?",
                (writer, now, upload_id),
            )
            return None

    def set_confirmed(self, upload_id: str, sha256: str, now: float) -> bool:
        """pending -> uploaded, recording the SHA-256 the client confirmed with."""
        with self._tx() as c:
            cur = c.execute(
                "UPDATE uploads SET status = 'uploaded', updated_at = ?, sha256 = ?"
                " WHERE upload_id = ? AND status = 'pending'",
                (now, sha256, upload_id),
            )
            return cur.rowcount == 1

    def accept(self, upload_id: str, checksum: str, now: float) -> bool:
        """Mark an uploaded attempt accepted and record the file's computed checksum."""
        with self._tx() as c:
            cur = c.execute(
                "UPDATE uploads SET status = 'accepted', updated_at = ?, reason = NULL"
                " WHERE upload_id = ? AND status = 'uploaded'",
                (now, upload_id),
            )
            if cur.rowcount != 1:
                return False
            c.execute(
                "UPDATE files SET checksum = ?, accepted_at = ? WHERE file_id = "
                "(SELECT file_id FROM uploads WHERE upload_id = ?)",
                (checksum, now, upload_id),
            )
            c.execute(
                "DELETE FROM outbox WHERE file_id = "
                "(SELECT file_id FROM uploads WHERE upload_id = ?)",
                (upload_id,),
            )
            return True

    # outbox

    def get_outbox(self, file_id: str) -> Optional[OutboxRow]:
        rows = self._all("SELECT * FROM outbox WHERE file_id = ?", (file_id,))
        return OutboxRow(*rows[0]) if rows else None

    def request_staging(self, file_id: str, now: float, delay: float) -> Tuple[OutboxRow, bool]:
        """The file's outbox entry, created in state `staging` if absent; (row, created)."""
        with self._tx() as c:
            rows = c.execute("SELECT * FROM outbox WHERE file_id = ?", (file_id,)).fetchall()
            if rows:
                return OutboxRow(*rows[0]), False
            row = OutboxRow(file_id, "staging", now, delay, None)
            c.execute("INSERT INTO outbox VALUES (?,?,?,?,?)", dataclasses.astuple(row))
            return row, True

    def set_staged(self, file_id: str, requested_at: float, ready_at: float) -> bool:
        with self._tx() as c:
            cur = c.execute(
                "UPDATE outbox SET state = 'staged', ready_at = ? WHERE file_id = ? "
                "AND state = 'staging' AND requested_at = ?",
                (ready_at, file_id, requested_at),
            )
            return cur.rowcount == 1

    def remove_outbox(self, file_id: str, *, only_if: Optional[OutboxRow] = None) -> bool:
        """Remove an outbox entry (if it still equals `only_if`, when given)."""
        with self._tx() as c:
            if only_if is None:
                cur = c.execute("DELETE FROM outbox WHERE file_id = ?", (file_id,))
            else:
                cur = c.execute(
                    "DELETE FROM outbox WHERE file_id = ? AND requested_at = ? AND state = ?",
                    (file_id, only_if.requested_at, only_if.state),
                )
            return cur.rowcount == 1

    def outbox_rows(self, state: Optional[str] = None) -> List[OutboxRow]:
        if state is None:
            return [OutboxRow(*r) for r in self._all("SELECT * FROM outbox")]
        return [OutboxRow(*r) for r in self._all("SELECT * FROM outbox WHERE state = ?", (state,))]
