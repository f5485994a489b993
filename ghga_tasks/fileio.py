"""Positioned file I/O with one portable fallback (Windows has no os.pread/os.pwrite)."""

from __future__ import annotations

import errno
import os
import threading

_seek_lock = threading.Lock()

if hasattr(os, "pread"):

    def read_at(fd: int, size: int, offset: int) -> bytes:
        return os.pread(fd, size, offset)
else:  # pragma: no cover - Windows

    def read_at(fd: int, size: int, offset: int) -> bytes:
        with _seek_lock:
            os.lseek(fd, offset, os.SEEK_SET)
            return os.read(fd, size)


O_BINARY = getattr(os, "O_BINARY", 0)


def preallocate(fd: int, size: int, reserve: bool = True) -> None:
    """Make the file `size` bytes long. With `reserve` its blocks are allocated too, so a
    full disk shows up now, not at 90 %; without, the file is sparse."""
    if size <= 0:
        return
    if reserve and hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, getattr(errno, "ENOTSUP", -1)):
                raise
    if os.fstat(fd).st_size < size:
        os.ftruncate(fd, size)


def fsync_dir(path: str) -> None:
    """Make a rename in `path` durable (a no-op where directories can't be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1))
