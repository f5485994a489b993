"""The state dir: one folder per transfer, atomic JSON facts, append-only ledgers, a lock.

Layout: <root>/<uploads|downloads>/<safe file id>-<hash of api url + file id>/
Nothing here ever holds a pre-signed URL.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import queue
import re
import sys
import threading
import time
from pathlib import Path
from typing import Iterable, Optional

from .errors import LockedError, OutputError
from .fileio import fsync_dir, is_disk_full


def normalize_api_url(api_url: str) -> str:
    return api_url.strip().rstrip("/")


def transfer_dir(root: Path, direction: str, api_url: str, file_id: str) -> Path:
    digest = hashlib.sha256(f"{normalize_api_url(api_url)}\n{file_id}".encode()).hexdigest()[:16]
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", file_id)[:64]
    return Path(root) / direction / f"{safe}-{digest}"


def ensure_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create state dir {path}: {exc.strerror or exc}") from None
    return path


def write_json(path: Path, data: dict, sync: bool = True) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of one.

    sync=False skips the fsyncs: the file survives a killed process, not always a power cut
    (and an fsync right after writing gigabytes waits until they reach the disk)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise state_error(path, exc) from None
    if sync:
        fsync_dir(str(path.parent))


def read_json(path: Path) -> Optional[dict]:
    try:
        with open(path, "r", encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise OutputError(f"cannot remove {path}: {exc.strerror or exc}") from None


class Ledger:
    """Append-only JSON lines: a header line, then one line per finished piece.

    A torn last line (the process died mid-write) is ignored. A header that differs from
    the expected one (another upload attempt, a changed source file) starts a new ledger.

    The pycurl loop logs through append_later(): a thread of the ledger's own writes the
    lines, so the loop never waits for the file system (btrfs holds an append back while
    writeback has the file's last page locked, with compression for a tenth of a second).
    """

    # append_later() waits only while this many calls' lines wait for the writer thread
    QUEUED_CALLS = 16

    def __init__(self, path: Path, header: dict):
        self.path = path
        self.header = header
        self._entries: list = []
        self._fh = None
        self._lock = threading.Lock()
        self._queue: Optional[queue.Queue] = None
        self._writer: Optional[threading.Thread] = None
        self._writer_error: Optional[Exception] = None
        self._load()

    def _load(self) -> None:
        lines = []
        try:
            with open(self.path, "r", encoding="utf-8") as fh:
                lines = fh.read().split("\n")
        except FileNotFoundError:
            pass
        parsed = []
        for line in lines:
            if not line.strip():
                continue
            try:
                parsed.append(json.loads(line))
            except ValueError:
                break  # torn tail
        if parsed and parsed[0] == {"header": self.header}:
            self._entries = parsed[1:]
            # rewrite so a torn tail doesn't glue onto the next append
            self._rewrite()
        else:
            self._entries = []
            self._rewrite()

    def _rewrite(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                for item in [{"header": self.header}] + self._entries:
                    fh.write(json.dumps(item, sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise state_error(self.path, exc, "ledger") from None

    def replace(self, items: Iterable[dict]) -> None:
        """Start over with these entries (atomically)."""
        with self._lock:
            self._stop_writer()
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            self._entries = list(items)
            self._rewrite()

    @property
    def entries(self) -> list:
        return list(self._entries)

    def append(self, items: Iterable[dict]) -> None:
        """Append lines after every queued one, fsync, and return: they survive a power cut."""
        written = threading.Event()
        if self._enqueue(items, written):
            written.wait()
            self._raise_writer_error()

    def append_later(self, items: Iterable[dict]) -> None:
        """Queue lines for the writer thread, which appends them at once unless the file
        system holds it back; they then survive a killed process, not a power cut. A kill
        loses the lines still queued: at most QUEUED_CALLS calls' lines. Raises the error
        of an earlier line the writer could not append."""
        self._raise_writer_error()
        self._enqueue(items, None)

    def _enqueue(self, items: Iterable[dict], written: Optional[threading.Event]) -> bool:
        items = list(items)
        if not items:
            return False
        with self._lock:  # the lines go into the file in the order of self._entries
            if self._writer is None:
                self._queue = queue.Queue(maxsize=self.QUEUED_CALLS)
                self._writer = threading.Thread(
                    target=self._write_queued, args=(self._queue,), name="ghga-ledger", daemon=True
                )
                self._writer.start()
            self._entries.extend(items)
            self._queue.put((items, written))
        return True

    def _write_queued(self, calls: queue.Queue) -> None:
        while True:
            batch = [calls.get()]
            while batch[-1] is not None:  # what else waits goes out in the same write
                try:
                    batch.append(calls.get_nowait())
                except queue.Empty:
                    break
            done = [call for call in batch if call is not None]
            lines = [item for items, _ in done for item in items]
            try:
                if lines and self._writer_error is None:
                    self._write(lines, sync=any(written for _, written in done))
            except Exception as exc:  # the caller's next call raises it; the writer goes on
                self._writer_error = exc
            finally:
                for _, written in done:
                    if written is not None:
                        written.set()
            if batch[-1] is None:
                return

    def _write(self, items: list, sync: bool = False) -> None:
        try:
            if self._fh is None:
                self._fh = open(self.path, "a", encoding="utf-8")
            self._fh.write("".join(json.dumps(i, sort_keys=True) + "\n" for i in items))
            self._fh.flush()
            if sync:
                os.fsync(self._fh.fileno())
        except OSError as exc:
            raise state_error(self.path, exc, "ledger") from None

    def _raise_writer_error(self) -> None:
        if self._writer_error is not None:
            error, self._writer_error = self._writer_error, None
            raise error

    def _stop_writer(self) -> None:
        """Let the writer thread append what is queued, then end it (under self._lock)."""
        if self._writer is not None and self._queue is not None:
            self._queue.put(None)
            self._writer.join()
            self._writer = self._queue = None

    def __len__(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        """Append what is queued and close the file (an error of the writer thread is
        dropped here: the next run then fetches or sends again what those lines logged)."""
        with self._lock:
            self._stop_writer()
            self._writer_error = None
            if self._fh is not None:
                self._fh.close()
                self._fh = None


def boot_id() -> Optional[str]:
    """Changes at every boot; tells a killed process from a power loss.

    Linux has a boot id; elsewhere the boot time (wall clock minus the monotonic clock, to the
    minute) stands in. A spurious change only costs re-fetching unsynced ranges."""
    try:
        with open("/proc/sys/kernel/random/boot_id", "r") as fh:
            value = fh.read().strip()[:8]
            if value:
                return value
    except OSError:
        pass
    return "t" + str(int((time.time() - time.monotonic()) // 60))


class FileLock:
    """An OS lock on the file `path`, holding the holder's pid; a second process gets
    LockedError at once. The one lock of the project: transfers and the server's data dir."""

    def __init__(self, path: Path, what: str):
        self.path = path
        self.what = what
        self._fh = None

    def __enter__(self) -> "FileLock":
        ensure_dir(self.path.parent)
        try:
            fh = open(self.path, "a+")
        except OSError as exc:
            raise state_error(self.path, exc) from None
        try:
            lock_fd(fh.fileno(), self.what)
        except LockedError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            fh.close()
            error = LockedError(
                f"another ghga-cli process (pid {holder}) is transferring {self.what}; "
                "wait for it to finish or stop it, then run again"
            )
            error.holder = holder
            raise error from None
        except BaseException:
            fh.close()
            raise
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
        except OSError as exc:
            try:
                fh.close()  # flushes the same write again: it may fail the same way
            except OSError:
                pass
            raise state_error(self.path, exc) from None
        self._fh = fh
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the descriptor releases the lock
            self._fh = None


HELD = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES, getattr(errno, "EDEADLOCK", errno.EDEADLK)}


def lock_fd(fd: int, what: str) -> None:
    """Exclusive, non-blocking lock on an open file; released when the fd is closed.

    LockedError only when another process holds it; a file system that cannot lock
    (NFS or Lustre mounted without locks) is an OutputError, not worth retrying."""
    try:
        _lock(fd)
    except OSError as exc:
        if exc.errno in HELD:
            raise LockedError(
                f"another ghga-cli process is transferring {what}; "
                "wait for it to finish or stop it, then run again"
            ) from None
        raise OutputError(
            f"cannot lock {what}: {exc.strerror or exc} (the file system does "
            "not support locks; use a state dir and output dir on one that "
            "does)"
        ) from None


def state_error(path: Path, exc: OSError, kind: str = "state file") -> OutputError:
    what = "disk full" if is_disk_full(exc) else (exc.strerror or str(exc))
    return OutputError(f"cannot write {kind} {path}: {what}")


if sys.platform == "win32":  # pragma: no cover
    import msvcrt

    _FAR = 1 << 40  # lock a byte far past the end: readers and our own writes are not blocked

    def _lock(fd: int) -> None:
        os.lseek(fd, _FAR, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        os.lseek(fd, 0, os.SEEK_SET)
else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
