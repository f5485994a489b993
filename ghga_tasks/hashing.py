"""Hash a file while it is being written or read, trailing its contiguous finished prefix."""

from __future__ import annotations

import hashlib
import mmap
import os
import queue
import threading
from typing import Optional

from .fileio import O_BINARY, read_at

BLOCK = 32 * 1024 * 1024  # an mmap window: no memory of its own
READ_BLOCK = 4 * 1024 * 1024  # a pread buffer: memory, so smaller


class PrefixHasher:
    """A thread that hashes bytes [0, target) of a file as `target` advances.

    hashlib and positioned reads release the GIL, so this runs beside the pycurl loop.
    """

    def __init__(self, path: str, algorithm: str = "sha256", use_mmap: bool = False):
        """use_mmap only for files this process owns: a file truncated under a mapping
        kills the process (SIGBUS), so a user's upload source is read with pread."""
        self.path = path
        self.use_mmap = use_mmap
        self.algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self._extra = hashlib.sha256() if algorithm != "sha256" else None
        self._fd = os.open(path, os.O_RDONLY | O_BINARY)
        self._pos = 0
        self._target = 0
        self._closing = False
        self._aborted = False
        self._error: Optional[BaseException] = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="ghga-hasher", daemon=True)
        self._thread.start()

    def advance(self, upto: int) -> None:
        with self._cond:
            if upto > self._target:
                self._target = upto
                self._cond.notify()

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while self._pos >= self._target and not self._closing:
                        self._cond.wait()
                    if self._pos >= self._target or self._aborted:
                        return
                    target = self._target
                while self._pos < target and not self._aborted:
                    n = min(BLOCK if self.use_mmap else READ_BLOCK, target - self._pos)
                    self._update(n)
                    self._pos += n
        except BaseException as exc:  # reported by finish()
            self._error = exc

    def _update(self, n: int) -> None:
        """Hash n bytes at the current position straight from the page cache (a window of
        mmap: no copy into a buffer); a plain read where mapping is not possible."""
        start = self._pos - self._pos % mmap.ALLOCATIONGRANULARITY
        window = None
        if self.use_mmap:
            try:
                window = mmap.mmap(
                    self._fd, self._pos - start + n, offset=start, access=mmap.ACCESS_READ
                )
            except (OSError, ValueError):
                window = None
        if window is None:
            data = read_at(self._fd, n, self._pos)
            if len(data) != n:
                raise OSError(f"{self.path} ended at {self._pos + len(data)} bytes while hashing")
            views = [data]
        else:
            views = [memoryview(window)[self._pos - start :]]
        try:
            for view in views:
                self._hash.update(view)
                if self._extra is not None:
                    self._extra.update(view)
        finally:
            if window is not None:
                views[0].release()
                window.close()

    def finish(self, total: int) -> dict:
        """Hash up to `total` and return {'sha256': hex, algorithm: hex}."""
        self.advance(total)
        self.close()
        if self._error is not None:
            raise self._error
        if self._pos != total:
            raise OSError(f"hashed {self._pos} of {total} bytes of {self.path}")
        digests = {self.algorithm: self._hash.hexdigest()}
        digests["sha256"] = (self._extra or self._hash).hexdigest()
        return digests

    def close(self, abort: bool = False) -> None:
        with self._cond:
            self._closing = True
            self._aborted = self._aborted or abort
            self._cond.notify()
        self._thread.join()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Md5Feeder:
    """MD5 of upload parts on a thread of its own, so the pycurl loop only reads and sends.

    feed() queues a block for a hash object; digest() waits until that object's blocks are
    hashed. The bounded queue holds at most a few blocks (backpressure, bounded memory)."""

    def __init__(self, depth: int = 8):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name="ghga-md5", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            target, data = item
            if isinstance(target, threading.Event):
                target.set()
            else:
                target.update(data)

    def feed(self, md5, data: bytes) -> None:
        self._queue.put((md5, data))

    def digest(self, md5) -> str:
        done = threading.Event()
        self._queue.put((done, None))
        done.wait()
        return md5.hexdigest()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
