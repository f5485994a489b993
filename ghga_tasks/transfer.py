"""The byte mover: one pycurl multi loop, N reused easy handles, no luigi.

Uploads PUT each part with a READFUNCTION that reads the part at its offset in 2 MiB blocks
(and hashes it for the ETag check). Downloads hand libcurl a BlockWriter at the range, which
copies the body's chunks into one block and writes it to the file at each aligned block end;
the header callback checks status, Content-Range and Content-Length before any byte is
written. The loop logs a range's written prefix every PIECE_SIZE bytes; a retry asks for the
rest.

Retry policy: network errors, 5xx, 408 and 429 retry the job with backoff, up to settings.retries
times; 403/404 from storage refresh the URL (bounded); other 4xx are fatal.
"""

from __future__ import annotations

import enum
import logging
import random
import time
from collections import deque
from typing import Callable, Deque, List, Optional, Tuple

import pycurl

from .api_calls import redact_urls
from .errors import (
    ApiRefused,
    ConfigError,
    GhgaError,
    NotAllowed,
    OutputError,
    TransientError,
)
from .fileio import is_disk_full
from .parts import Part
from .settings import Settings
from .units import KiB, MiB

log = logging.getLogger("ghga_tasks")

UPLOAD_BUFFER = 2 * MiB  # libcurl's maximum
DOWNLOAD_BUFFER = 1 * MiB
# downloads write in blocks this large, aligned in the file (fileio.BlockWriter says why)
WRITE_BLOCK = 256 * KiB
MAX_REFRESH = 4  # fresh URLs in a row that storage may refuse before we give up
STALL_SPEED = 1024  # bytes/s; slower than this for the stall limit (--timeout) is a stall
# a range's written prefix is logged every PIECE_SIZE bytes, up to its last WRITE_BLOCK written:
# a kill or a cut-off attempt loses at most about both per connection, not the whole range
PIECE_SIZE = 8 * MiB

RETRYABLE_CURL = {
    pycurl.E_COULDNT_CONNECT,
    pycurl.E_OPERATION_TIMEDOUT,
    pycurl.E_PARTIAL_FILE,
    pycurl.E_GOT_NOTHING,
    pycurl.E_SEND_ERROR,
    pycurl.E_RECV_ERROR,
    pycurl.E_COULDNT_RESOLVE_HOST,
    getattr(pycurl, "E_HTTP2", 16),
    getattr(pycurl, "E_HTTP2_STREAM", 92),
    getattr(pycurl, "E_SEND_FAIL_REWIND", 65),
}
TLS_CURL = {
    pycurl.E_SSL_CONNECT_ERROR,
    getattr(pycurl, "E_PEER_FAILED_VERIFICATION", 60),
    getattr(pycurl, "E_SSL_CACERT", 60),
    getattr(pycurl, "E_SSL_CACERT_BADFILE", 77),
}


def connections_and_rate(parallel: int, jobs: int, max_rate: int) -> Tuple[int, int]:
    """(connections, bytes/s cap of each; 0 = none) for one file. A cap below the number of
    connections opens fewer of them, so that no share rounds down to 0 (no cap in libcurl)."""
    connections = max(1, min(parallel, jobs))
    if not max_rate:
        return connections, 0
    connections = min(connections, max_rate)
    return connections, max_rate // connections


class Outcome(enum.Enum):
    OK = "ok"
    RETRY = "retry"  # count an attempt, back off, try again
    REFRESH = "refresh"  # the URL was refused: get a new one, try again


class Job:
    """One part PUT or one range GET, with its runtime state on a handle."""

    __slots__ = (
        "part",
        "attempts",
        "refusals",
        "not_before",
        "problem",
        "status",
        "headers",
        "etag",
        "md5",
        "pos",
        "fh",
        "bad_header",
        "gen",
        "kept",
        "kept_before",
        "mark",
        "callback_error",
    )

    def __init__(self, part: Part):
        self.part = part
        self.attempts = 0
        self.refusals = 0
        self.not_before = 0.0
        self.problem = ""
        self.gen = 0
        self.kept = 0  # bytes from the part's start already logged (download pieces)
        self.reset()

    def reset(self) -> None:
        self.kept_before = self.kept  # where this attempt starts
        self.mark = 0  # bytes of this attempt at which the next piece is logged
        self.status = 0
        self.headers: dict = {}
        self.etag = ""
        self.md5 = None
        self.pos = 0
        self.fh = None
        self.bad_header: Optional[GhgaError] = None
        self.callback_error: Optional[BaseException] = None  # raised in a callback of this attempt

    def label(self) -> str:
        p = self.part
        return f"part {p.number}" if p.number else f"bytes {p.offset}-{p.end - 1}"


# what each callback returns to make libcurl abort the transfer
ABORT_CALLBACK = {
    pycurl.WRITEFUNCTION: 0,  # fewer bytes taken than given: a write error
    pycurl.HEADERFUNCTION: 0,
    pycurl.READFUNCTION: pycurl.READFUNC_ABORT,
    pycurl.SEEKFUNCTION: getattr(pycurl, "SEEKFUNC_FAIL", 1),
}


class GuardedCurl:
    """The handle as a strategy's begin() sees it: every callback it installs is wrapped.

    pycurl prints an exception raised in a callback (through sys.excepthook) and goes on. The
    wrapper keeps the first one on the job instead and aborts the transfer; the engine raises
    it when the handle finishes. Nothing process-wide is touched, so engines in several
    threads keep their own errors. A file object given as WRITEDATA becomes a wrapped
    WRITEFUNCTION of its write method, as pycurl itself would do unwrapped."""

    def __init__(self, curl: pycurl.Curl, job: "Job"):
        self.curl = curl
        self.job = job

    def setopt(self, option: int, value) -> None:
        if option == pycurl.WRITEDATA and hasattr(value, "write"):
            option, value = pycurl.WRITEFUNCTION, value.write
        if option in ABORT_CALLBACK and callable(value):
            value = _guarded(value, self.job, ABORT_CALLBACK[option])
        self.curl.setopt(option, value)

    def __getattr__(self, name: str):
        return getattr(self.curl, name)


def _guarded(callback: Callable, job: "Job", abort):
    def call(*args):
        try:
            return callback(*args)
        except BaseException as exc:  # noqa: BLE001 - even Ctrl-C: raised by the engine
            if job.callback_error is None:
                job.callback_error = exc
            return abort

    return call


class Strategy:
    """What the engine asks of an upload or a download."""

    verb = "transfer"

    def begin(self, curl: pycurl.Curl, job: Job) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def end(self, curl: pycurl.Curl, job: Job) -> Outcome:  # pragma: no cover - interface
        raise NotImplementedError

    def done(self, job: Job) -> None:
        pass

    def refresh(self, job: "Job") -> None:
        pass

    def tick(self) -> None:
        """Called about once a second from the loop (commit ledgers, etc.)."""

    def poll(self, active: dict) -> None:
        """Called after every pass of the loop with {handle: job} in flight."""

    def moved(self, curl: pycurl.Curl) -> int:  # pragma: no cover - interface
        raise NotImplementedError


class Engine:
    def __init__(
        self,
        settings: Settings,
        progress: Optional[Callable[[int], None]] = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.settings = settings
        self.progress = progress
        self.sleep = sleep
        self.bytes_moved = 0  # bytes of this run that were kept (finished, logged)
        self.bytes_resent = 0  # bytes of this run's cut-off attempts that go again
        self.url_refreshes = 0  # fresh URLs asked for after storage refused one

    def _handle(self) -> pycurl.Curl:
        s = self.settings
        c = pycurl.Curl()
        c.setopt(pycurl.NOSIGNAL, 1)
        c.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        c.setopt(pycurl.FOLLOWLOCATION, 0)
        c.setopt(pycurl.CONNECTTIMEOUT, max(1, int(s.timeout)))
        c.setopt(pycurl.LOW_SPEED_LIMIT, STALL_SPEED)
        c.setopt(pycurl.LOW_SPEED_TIME, max(1, int(s.timeout)))
        c.setopt(pycurl.TCP_KEEPALIVE, 1)
        c.setopt(pycurl.SSL_VERIFYPEER, 1)
        c.setopt(pycurl.SSL_VERIFYHOST, 2)
        c.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        if s.ca_bundle:
            c.setopt(pycurl.CAINFO, s.ca_bundle)
        c.setopt(pycurl.USERAGENT, "ghga-tasks")
        return c

    def run(self, strategy: Strategy, parts: List[Part]) -> None:
        """Move every part; return when all are done, raise a GhgaError otherwise."""
        s = self.settings
        queue: Deque[Job] = deque(Job(p) for p in parts)
        if not queue:
            return
        parallel, rate = connections_and_rate(s.parallel, len(queue), s.max_rate)
        multi = pycurl.CurlMulti()
        idle = [self._handle() for _ in range(parallel)]
        for c in idle:
            if rate:
                c.setopt(pycurl.MAX_SEND_SPEED_LARGE, rate)
                c.setopt(pycurl.MAX_RECV_SPEED_LARGE, rate)
                # a bandwidth cap near the stall speed must not count as a stall
                c.setopt(pycurl.LOW_SPEED_LIMIT, max(1, min(STALL_SPEED, rate // 2)))
        active: dict = {}
        last_tick = last_progress = 0.0
        try:
            while queue or active:
                now = time.monotonic()
                while idle and queue and queue[0].not_before <= now:
                    job = queue.popleft()
                    c = idle.pop()
                    job.reset()
                    try:
                        strategy.begin(GuardedCurl(c, job), job)
                    except BaseException:
                        idle.append(c)
                        raise
                    multi.add_handle(c)
                    active[c] = job
                if not active:
                    # everything left is backing off
                    self.sleep(max(0.0, min(j.not_before for j in queue) - now))
                    continue
                while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
                    pass
                while True:
                    left, ok, failed = multi.info_read()
                    for c in ok:
                        self._finish(multi, strategy, active.pop(c), c, None, idle, queue)
                    for c, code, message in failed:
                        self._finish(
                            multi, strategy, active.pop(c), c, (code, message), idle, queue
                        )
                    if not left:
                        break
                strategy.poll(active)
                now = time.monotonic()
                if now - last_tick >= 1.0:
                    strategy.tick()
                    last_tick = now
                if self.progress and now - last_progress >= 0.25:
                    inflight = sum(strategy.moved(c) for c in active)
                    self.progress(self.bytes_moved + inflight)
                    last_progress = now
                if active:
                    multi.select(0.25)
            strategy.tick()
        finally:
            for c in list(active):
                multi.remove_handle(c)
                job = active.pop(c)
                if job.fh is not None:
                    close_quietly(job.fh)
                idle.append(c)
            for c in idle:
                c.close()
            multi.close()

    def _finish(
        self,
        multi,
        strategy: Strategy,
        job: Job,
        c: pycurl.Curl,
        error,
        idle: list,
        queue: Deque[Job],
    ) -> None:
        multi.remove_handle(c)
        idle.append(c)
        job.status = c.getinfo(pycurl.RESPONSE_CODE) or job.status
        if error is not None or job.callback_error is not None:
            if job.fh is not None:
                close_quietly(job.fh)
                job.fh = None
            outcome = self._classify_error(job, *(error or (0, "")))
        else:
            outcome = strategy.end(c, job)
        if outcome is Outcome.OK:
            job.refusals = 0
            self.bytes_moved += job.part.length - job.kept_before
            strategy.done(job)
            return
        # a cut-off attempt: its logged pieces stay, the rest of what it moved goes again
        kept = job.kept - job.kept_before
        self.bytes_moved += kept
        self.bytes_resent += max(0, strategy.moved(c) - kept)
        if outcome is Outcome.REFRESH:
            job.refusals += 1
            if job.refusals > MAX_REFRESH:
                raise NotAllowed(
                    f"storage refused {job.label()} with HTTP {job.status} even "
                    f"after {MAX_REFRESH} fresh URLs"
                )
            log.info("%s: HTTP %s from storage, asking for a fresh URL", job.label(), job.status)
            self.url_refreshes += 1
            strategy.refresh(job)
            queue.appendleft(job)
            return
        job.attempts += 1
        if job.attempts > self.settings.retries:
            raise TransientError(
                f"{strategy.verb} of {job.label()} failed after "
                f"{job.attempts} attempts: {job.problem}"
            )
        delay = min(0.5 * 2 ** (job.attempts - 1), 30.0) * (0.8 + 0.4 * random.random())
        log.warning(
            "storage, %s of %s: %s; retry %d of %d in %.1f s",
            strategy.verb,
            job.label(),
            job.problem,
            job.attempts,
            self.settings.retries,
            delay,
        )
        job.not_before = time.monotonic() + delay
        queue.append(job)

    def _classify_error(self, job: Job, code: int, message: str) -> Outcome:
        captured, job.callback_error = job.callback_error, None
        if captured is not None:
            if isinstance(captured, GhgaError):
                raise captured
            if is_disk_full(captured):
                raise OutputError("cannot write the output: disk full")
            if isinstance(captured, OSError):
                raise OutputError(f"I/O error: {captured.strerror or captured}")
            raise captured
        message = redact_urls(message)  # libcurl may quote the URL
        if job.bad_header:
            if job.status in (403, 404):
                return Outcome.REFRESH
            if job.status in (408, 429) or job.status >= 500:
                job.problem = f"HTTP {job.status}"
                return Outcome.RETRY
            raise job.bad_header
        if code in (pycurl.E_UNSUPPORTED_PROTOCOL, pycurl.E_URL_MALFORMAT):
            raise ApiRefused(f"{job.label()}: the storage URL is not an http(s) URL: {message}")
        if code in TLS_CURL:
            raise ConfigError(f"TLS error talking to storage: {message} (see --ca-bundle)")
        if code in RETRYABLE_CURL or code == pycurl.E_WRITE_ERROR:
            job.problem = message or f"curl error {code}"
            return Outcome.RETRY
        raise TransientError(f"{job.label()}: {message or f'curl error {code}'}")


def close_quietly(fh) -> None:
    try:
        fh.close()
    except OSError:
        pass
