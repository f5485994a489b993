"""Hash a file while it is being written or read, trailing its contiguous finished prefix."""

from __future__ import annotations

import hashlib
import mmap
import os
import queue
import threading
import time
from typing import Optional

from .fileio import O_BINARY, DropBehind

# One buffer, read into again and again: SHA-256 runs at its in-cache speed on it.
READ_BLOCK = 1024 * 1024
# A mapped file is hashed through windows of this size (a multiple of every platform's
# mmap.ALLOCATIONGRANULARITY); the process's RSS counts the window's pages.
MAP_WINDOW = 16 * 1024 * 1024
MAPPED, READ = "mapped", "read"


class CheaperWay:
    """Which of two ways of doing the same work costs less, learnt while working: each way
    once, then the one with fewer CPU seconds per byte, and every `probe`-th pick the other,
    so that a change shows. Each way's figures halve past `memory` bytes: recent work
    counts most."""

    def __init__(self, ways=(MAPPED, READ), probe: int = 16, memory: int = 256 * 1024 * 1024):
        self.ways, self.probe, self.memory = ways, probe, memory
        self.seconds = dict.fromkeys(ways, 0.0)
        self.bytes = dict.fromkeys(ways, 0)
        self.picks = 0

    def pick(self) -> str:
        self.picks += 1
        for way in self.ways:
            if not self.bytes[way]:
                return way
        cheaper, other = sorted(self.ways, key=lambda w: self.seconds[w] / self.bytes[w])
        return other if self.picks % self.probe == 0 else cheaper

    def spent(self, way: str, seconds: float, nbytes: int) -> None:
        self.seconds[way] += seconds
        self.bytes[way] += nbytes
        if self.bytes[way] > self.memory:
            self.seconds[way] /= 2
            self.bytes[way] //= 2


class PrefixHasher:
    """A thread that hashes bytes [0, target) of a file as `target` advances.

    hashlib and reads release the GIL, so this runs beside the pycurl loop.

    A file is read into one buffer (READ). With `mapped`, windows of it may instead be
    hashed where they lie in the page cache (MAPPED): no copy, which saved up to a tenth of
    a download's CPU on one day; on another, on the same VM, SHA-256 ran far slower on
    memory outside the CPU's caches, and reading cost less. So the hasher measures its own
    CPU time per byte each way and mostly takes the cheaper (CheaperWay), window by window.
    `mapped` only for a file of our own that keeps its size (a download's preallocated
    partial file): a mapping whose file is truncated under it faults (SIGBUS) instead of
    raising. Where mmap fails, the hasher reads. With `drop` (a download's partial file),
    what it hashed is dropped from the page cache well behind it (fileio.DropBehind).
    """

    def __init__(
        self, path: str, algorithm: str = "sha256", mapped: bool = False, drop: bool = False
    ):
        self.path = path
        self.algorithm = algorithm
        self.ways: Optional[CheaperWay] = CheaperWay() if mapped else None
        self._window, self._way = -1, READ
        self._map: Optional[mmap.mmap] = None
        self._map_at = -1
        self._read_at = 0  # where the reader's position is
        self._hash = hashlib.new(algorithm)
        self._extra = hashlib.sha256() if algorithm != "sha256" else None
        self._fd = os.open(path, os.O_RDONLY | O_BINARY)
        self._dropper = DropBehind(self._fd) if drop else None
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
                        self._step(reader, target)
                        if self._dropper is not None:
                            self._dropper.passed(self._pos)
        except BaseException as exc:  # reported by finish()
            self._error = exc
        finally:
            self._unmap()

    def _step(self, reader, target: int) -> None:
        """Hash on towards `target`, within the current window, the window's way."""
        window = self._pos // MAP_WINDOW
        end = min(target, (window + 1) * MAP_WINDOW)
        if self.ways is None:
            self._update(reader, min(READ_BLOCK, end - self._pos))
            return
        if window != self._window:
            self._window, self._way = window, self.ways.pick()
        start, started = self._pos, time.thread_time()
        if self._way == MAPPED:
            if not self._update_mapped(end):
                self.ways = None  # cannot be mapped: read from here on
                return
        else:
            self._update(reader, min(READ_BLOCK, end - self._pos))
        self.ways.spent(self._way, time.thread_time() - started, self._pos - start)

    def _update_mapped(self, target: int) -> bool:
        """Hash on towards `target`, to the end of the window at most, from a mapping.
        False when the file cannot be mapped."""
        at = self._pos - self._pos % MAP_WINDOW
        if self._map is None or at != self._map_at or self._pos >= at + len(self._map):
            self._unmap()
            size = os.fstat(self._fd).st_size
            if size < min(target, at + MAP_WINDOW):
                raise OSError(f"{self.path} ended at {size} bytes while hashing")
            try:
                self._map = mmap.mmap(
                    self._fd, min(MAP_WINDOW, size - at), access=mmap.ACCESS_READ, offset=at
                )
            except (OSError, ValueError):
                return False
            self._map_at = at
        end = min(target, at + len(self._map))
        with memoryview(self._map) as window:
            self._hash_view(window[self._pos - at : end - at])
        self._pos = end
        return True

    def _unmap(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map, self._map_at = None, -1

    def _hash_view(self, view: memoryview) -> None:
        self._hash.update(view)
        if self._extra is not None:
            self._extra.update(view)

    def _update(self, reader, n: int) -> None:
        """Hash the next n bytes, read from the file."""
        if self._read_at != self._pos:  # windows since were mapped
            reader.seek(self._pos)
        view = self._buffer[:n]
        got = 0
        while got < n:
            step = reader.readinto(view[got:])
            if not step:
                raise OSError(f"{self.path} ended at {self._pos + got} bytes while hashing")
            got += step
        self._hash_view(view)
        self._pos += n
        self._read_at = self._pos

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
