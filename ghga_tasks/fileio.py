"""File I/O of the engine: positioned reads with one portable fallback (Windows has no
os.pread), preallocation, the block writer downloads write their ranges through, and the
page-cache dropper that trails them."""

from __future__ import annotations

import errno
import os
import threading

from .units import GiB, MiB

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


class DropBehind:
    """Keeps a file being written out of the page cache behind a reader that is done with
    its bytes (a download's hasher): each WINDOW that reader passed `lag` bytes ago is
    dropped from the cache. By then the kernel's own writeback has written it, so dropping
    costs only the freeing of its pages (DONTNEED starts the writeback of any still dirty).

    Without it a download of hundreds of gigabytes fills the page cache, and every page for
    new bytes is one the kernel must first reclaim from other files, or, on a VM whose host
    takes free memory back (free page reporting), one the host must fault in again, at many
    times the cost of the write (benchmarks/results/2026-12-05-vm-2cpu-drop-behind). Pages
    dropped here are reused at once for the next bytes. A file shorter than `lag` is left
    alone. A no-op where posix_fadvise is missing (macOS, Windows); only clean pages are
    ever dropped, never data."""

    WINDOW = 64 * MiB  # a multiple of the largest folio: DONTNEED drops only whole ones

    def __init__(self, fd: int):
        self._fd = fd
        self.lag = default_drop_lag()
        self._next = 0  # the first window not yet dropped
        self._advise = getattr(os, "posix_fadvise", None)

    def passed(self, offset: int) -> None:
        """The reader is done with bytes [0, offset)."""
        while self._advise is not None and (self._next + 1) * self.WINDOW + self.lag <= offset:
            try:
                self._advise(
                    self._fd, self._next * self.WINDOW, self.WINDOW, os.POSIX_FADV_DONTNEED
                )
            except OSError:  # advice only: a file system that refuses it keeps its cache
                self._advise = None
            self._next += 1


def default_drop_lag() -> int:
    """How far behind the hasher a download's pages are dropped: an eighth of the machine's
    memory, from 256 MiB to 4 GiB; room for the kernel's writeback (which starts at a tenth
    of free memory by default) to have written them."""
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):  # no sysconf (Windows)
        memory = 0
    return min(4 * GiB, max(256 * MiB, memory // 8))
