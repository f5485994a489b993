"""The partial file of a download: hidden names beside the output, opening, locking and
preallocating it, which of its logged ranges survive a reboot, checkpoints, and the move of
the verified file into place."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import threading
import time
from pathlib import Path
from typing import List, Optional, Tuple

from . import state
from .errors import OutputError, UsageError
from .fileio import O_BINARY, fsync_dir, is_disk_full, preallocate

NAME_MAX = 255  # bytes of one file name on every file system we run on
WINDOWS_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}


def check_file_id(file_id: str) -> str:
    """A file id becomes a file name in output_dir; refuse anything that could escape it."""
    bad = (
        not file_id
        or file_id in (".", "..")
        or file_id != file_id.strip()
        or any(c in '/\\:<>|?*"' or ord(c) < 32 for c in file_id)
        or file_id.split(".")[0].upper() in WINDOWS_RESERVED
        or len(file_id.encode()) > NAME_MAX
    )
    if bad:
        raise UsageError(f"file id {file_id!r} cannot be used as a file name in the output dir")
    return file_id


def side_path(directory: str, file_id: str, suffix: str) -> Path:
    """`.ID.SUFFIX` in `directory`: a hidden file beside the output. A name that would not
    fit NAME_MAX keeps the start of the id and adds a hash of the whole id."""
    name = f".{file_id}.{suffix}"
    if len(name.encode()) > NAME_MAX:
        digest = hashlib.sha256(file_id.encode()).hexdigest()[:16]
        room = NAME_MAX - len(f"..~{digest}.{suffix}")
        start = file_id.encode()[:room].decode(errors="ignore")
        name = f".{start}~{digest}.{suffix}"
    return Path(directory) / name


def partial_path(directory: str, file_id: str) -> Path:
    return side_path(directory, file_id, "ghga-part")


def open_partial(part: Path, size: int, reserve: bool = True) -> int:
    """Open (create) and lock the partial file of `size` bytes; an fd.

    With `reserve` its space is allocated now, so a full disk shows up before any byte moves;
    without, the file is sparse and filled as ranges arrive (compressing file systems such
    as btrfs with compress-force store preallocated blocks uncompressed)."""
    created = not part.exists()
    try:
        fd = os.open(part, os.O_RDWR | os.O_CREAT | O_BINARY, 0o644)
    except OSError as exc:
        raise OutputError(f"cannot create {part}: {exc.strerror or exc}") from None
    try:
        # the state lock is per API URL; this one is per partial file (other state dirs,
        # other spellings of the same API), held until the fd is closed
        state.lock_fd(fd, f"{part}")
    except BaseException:
        os.close(fd)
        raise
    try:
        if os.fstat(fd).st_size > size:  # a stale partial of a larger object (ledger reset)
            os.ftruncate(fd, size)
        preallocate(fd, size, reserve)
    except OSError as exc:
        os.close(fd)
        if created:  # nothing of ours in it: leave no empty partial behind
            state.remove(part)
        if is_disk_full(exc):
            raise OutputError(
                f"not enough space for {size} bytes in {part.parent} "
                "(disk full); free space and run again"
            ) from None
        raise OutputError(f"cannot allocate {part}: {exc.strerror or exc}") from None
    return fd


def move_into_place(part: Path, final: Path, file_id: str) -> None:
    """An atomic rename, without waiting for the disk; across filesystems: copy, fsync,
    rename, and only then drop the partial."""
    tmp = side_path(str(final.parent), file_id, "ghga-tmp")
    try:
        try:
            os.replace(part, final)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            with open(part, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 8 * 1024 * 1024)
                dst.flush()
                os.fsync(dst.fileno())
            st = os.stat(part)
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))  # done.json has this mtime
            os.replace(tmp, final)
            fsync_dir(str(final.parent))
            os.remove(part)
    except OSError as exc:
        state.remove(tmp)
        what = "disk full" if is_disk_full(exc) else (exc.strerror or str(exc))
        raise OutputError(
            f"cannot move the file into place at {final}: {what}; the verified bytes stay at {part}"
        ) from None


def trusted_ranges(entries: list, boot: Optional[str]) -> List[Tuple[int, int]]:
    """Ranges a resumed download may keep.

    Ranges, and pieces of ranges in flight, are logged as soon as their bytes are written
    (enough after a killed process); after a reboot only those covered by a {"durable": n}
    checkpoint are trusted."""
    ranges = [e for e in entries if "offset" in e]
    same_boot = boot is not None and all(e.get("boot") == boot for e in ranges)
    if not same_boot:
        durable = max([e["durable"] for e in entries if "durable" in e] or [0])
        ranges = [e for e in entries[:durable] if "offset" in e]
    return [(e["offset"], e["size"]) for e in ranges]


class Checkpointer:
    """fdatasync the partial file in a thread, then log how many ledger lines that made
    durable. The first sync starts CHECKPOINT seconds in, each next one SYNC_SHARE_INVERSE
    times as long after the last one's start as that one took (CHECKPOINT to MAX_CHECKPOINT
    seconds). The pycurl loop does not wait for a sync, but on some file systems its writes
    do (btrfs locks the file and the pages it writes back): this keeps that wait to about a
    thirtieth of the download's time."""

    CHECKPOINT = 60.0
    MAX_CHECKPOINT = 300.0
    SYNC_SHARE_INVERSE = 30

    def __init__(self, fd: int, ledger: state.Ledger, clock=time.monotonic, sync=None):
        self.fd = fd
        self.ledger = ledger
        self.error: Optional[BaseException] = None
        self.interval = self.CHECKPOINT  # the gap after the last sync's start
        self._clock = clock
        self._fdatasync = sync or getattr(os, "fdatasync", os.fsync)
        self._thread: Optional[threading.Thread] = None
        self._last = clock()

    def tick(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            if is_disk_full(error):
                raise OutputError("disk full while writing the download") from None
            raise OutputError(f"cannot write the download: {error}")
        busy = self._thread is not None and self._thread.is_alive()
        if busy or self._clock() - self._last < self.interval:
            return
        self._last = self._clock()
        self._thread = threading.Thread(target=self._sync, args=(len(self.ledger),), daemon=True)
        self._thread.start()

    def _sync(self, lines: int) -> None:
        try:
            started = self._clock()
            self._fdatasync(self.fd)
            took = self._clock() - started
            self.interval = min(
                self.MAX_CHECKPOINT, max(self.CHECKPOINT, took * self.SYNC_SHARE_INVERSE)
            )
            self.ledger.append([{"durable": lines}])
        except BaseException as exc:
            self.error = exc

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()
