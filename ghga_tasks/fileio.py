"""File I/O of the engine: positioned reads with one portable fallback (Windows has no
os.pread), preallocation, and the block writer downloads write their ranges through."""

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


class BlockWriter:
    """Writes a stream of bytes into a file from `start` on, in writes of `block` bytes that
    end at multiples of `block` in the file (the first and the last may be shorter).

    Aligned writes let the kernel keep the file's page cache in multi-page folios. A buffered
    file object writes what its buffer holds wherever the stream happens to be, and the kernel
    then spends far more system time per byte on small folios. Large blocks make the kernel
    allocate large folios, and on a VM whose host takes free memory back (free page
    reporting) those soon land in memory the host must fault in again, at many times the
    cost; 256 KiB blocks avoid both (measured in
    benchmarks/results/2026-12-04-vm-2cpu-write-block/NOTES.md)."""

    def __init__(self, path: str, start: int, block: int):
        self._raw = open(path, "r+b", buffering=0)
        try:
            self._raw.seek(start)
        except BaseException:
            self._raw.close()
            raise
        self._block = block
        self._view = memoryview(bytearray(block))
        self._filled = 0
        self._limit = block - start % block
        self.written_to = start  # the file offset up to which the bytes are written

    def write(self, data: bytes) -> None:
        """Take all of `data` (libcurl's write callback: None means all bytes taken)."""
        filled, n = self._filled, len(data)
        if filled + n < self._limit:  # the common case: one copy into the block
            self._view[filled : filled + n] = data
            self._filled = filled + n
            return
        source = memoryview(data)
        while source:
            k = min(self._limit - self._filled, len(source))
            self._view[self._filled : self._filled + k] = source[:k]
            self._filled += k
            source = source[k:]
            if self._filled == self._limit:
                self._write_out()

    def tell(self) -> int:
        return self.written_to + self._filled

    def flush(self) -> None:
        if self._filled:
            self._write_out()

    def close(self) -> None:
        """Close the file; bytes not flushed are dropped (a failed range is fetched again
        from its last logged piece, never from what a writer held)."""
        self._raw.close()

    def _write_out(self) -> None:
        view = self._view[: self._filled]
        while view:
            n = self._raw.write(view)
            if not n:
                raise OSError(f"cannot write at offset {self.written_to}: no bytes taken")
            self.written_to += n
            view = view[n:]
        self._filled = 0
        self._limit = self._block - self.written_to % self._block
