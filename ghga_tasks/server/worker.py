"""Background threads: a job queue (acceptance, staging) and periodic sweeps (eviction).

Jobs are not persisted: the database is. On start the server re-submits whatever the
database says is unfinished, so a job lost at shutdown is redone.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Callable, List, Tuple, TypeVar

from .storage import Stopped

log = logging.getLogger("ghga_tasks.server.worker")

T = TypeVar("T")


def retrying(
    fn: Callable[[], T],
    stop: threading.Event,
    what: str,
    attempts: int = 4,
    delay: float = 1.0,
    permanent: Callable[[BaseException], bool] = lambda e: False,
) -> T:
    """Call fn, retrying transient failures with doubling delays (bounded)."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Stopped:
            raise
        except Exception as exc:  # noqa: BLE001 - retried, then re-raised
            if attempt == attempts or permanent(exc):
                raise
            log.warning("%s failed (attempt %d/%d): %s", what, attempt, attempts, exc)
            if stop.wait(delay):
                raise Stopped() from exc
            delay *= 2
    raise AssertionError("unreachable")


class Worker:
    def __init__(self, threads: int, stop: threading.Event):
        self.stop_event = stop
        self._queue: "queue.Queue[Tuple[str, Callable[..., Any], tuple]]" = queue.Queue()
        self._threads: List[threading.Thread] = [
            threading.Thread(target=self._run, name=f"ghga-worker-{n}", daemon=True)
            for n in range(threads)
        ]
        self._sweeps: List[Tuple[float, Callable[[], Any]]] = []

    def submit(self, name: str, fn: Callable[..., Any], *args: Any) -> None:
        self._queue.put((name, fn, args))

    def every(self, seconds: float, fn: Callable[[], Any]) -> None:
        """Run fn every `seconds` in its own thread (register before start)."""
        self._sweeps.append((seconds, fn))

    def start(self) -> None:
        for seconds, fn in self._sweeps:
            self._threads.append(
                threading.Thread(
                    target=self._sweep,
                    args=(seconds, fn),
                    name=f"ghga-sweep-{fn.__name__}",
                    daemon=True,
                )
            )
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 15) -> None:
        """Ask all threads to stop and wait for them (bounded)."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            if t.is_alive():
                t.join(max(0.0, deadline - time.monotonic()))
                if t.is_alive():
                    log.warning("thread %s still busy at shutdown", t.name)

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                name, fn, args = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                fn(*args)
            except Stopped:
                log.info("%s interrupted by shutdown; resumed at next start", name)
            except Exception:  # noqa: BLE001 - a job must not kill its thread
                log.exception("%s failed", name)

    def _sweep(self, seconds: float, fn: Callable[[], Any]) -> None:
        while not self.stop_event.wait(seconds):
            try:
                fn()
            except Stopped:
                return
            except Exception:  # noqa: BLE001
                log.exception("periodic %s failed", fn.__name__)
