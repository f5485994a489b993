"""Hash a file while it is being written or read, trailing its contiguous finished prefix."""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from typing import Optional

from .fileio import O_BINARY

# One buffer, read into again and again: SHA-256 runs at its in-cache speed on it; hashing
# large mmap windows of the page cache took about a fifth more CPU.
READ_BLOCK = 1024 * 1024


class PrefixHasher:
    """A thread that hashes bytes [0, target) of a file as `target` advances.

    hashlib and reads release the GIL, so this runs beside the pycurl loop.
    """

    def __init__(self, path: str, algorithm: str = "sha256"):
        self.path = path
        self.algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self._extra = hashlib.sha256() if algorithm != "sha256" else None
        self._fd = os.open(path, os.O_RDONLY | O_BINARY)
        self._buffer = memoryview(bytearray(READ_BLOCK))
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
            with open(self._fd, "rb", buffering=0, closefd=False) as reader:
                while True:
                    with self._cond:
                        while self._pos >= self._target and not self._closing:
                            self._cond.wait()
                        if self._pos >= self._target or self._aborted:
                            return
                        target = self._target
                    while self._pos < target and not self._aborted:
                        self._update(reader, min(READ_BLOCK, target - self._pos))
        except BaseException as exc:  # reported by finish()
            self._error = exc

    def _update(self, reader, n: int) -> None:
        """Hash the next n bytes: the file is read in order, from its start."""
        view = self._buffer[:n]
        got = 0
        while got < n:
            step = reader.readinto(view[got:])
            if not step:
                raise OSError(f"{self.path} ended at {self._pos + got} bytes while hashing")
            got += step
        self._hash.update(view)
        if self._extra is not None:
            self._extra.update(view)
        self._pos += n

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
