"""What the engine does with each part or range: PUT a part of a local file to its pre-signed
URL and check the ETag against its MD5 (UploadStrategy), or GET a range into the partial file
and log its written prefix piece by piece (DownloadStrategy).
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Callable, Optional

import pycurl

from .curl_compat import SIZE_DOWNLOAD_T, SIZE_UPLOAD_T, UPLOAD_BUFFERSIZE
from .errors import (
    ApiRefused,
    GhgaError,
    InputError,
    IntegrityError,
    OutputError,
    TransientError,
)
from .fileio import BlockWriter, is_disk_full, read_at
from .hashing import Md5Feeder
from .transfer import (
    DOWNLOAD_BUFFER,
    PIECE_SIZE,
    UPLOAD_BUFFER,
    WRITE_BLOCK,
    Job,
    Outcome,
    Strategy,
    close_quietly,
)

log = logging.getLogger("ghga_tasks")


class UploadStrategy(Strategy):
    """PUT parts of a local file to pre-signed part URLs."""

    verb = "upload"

    def __init__(
        self, fd: int, url_for: Callable[[int], str], on_done: Callable[[Job], None], md5: Md5Feeder
    ):
        self.fd = fd
        self.url_for = url_for
        self.on_done = on_done
        self.md5 = md5

    def begin(self, c: pycurl.Curl, job: Job) -> None:
        part = job.part
        url = self.url_for(part.number)
        job.md5 = _md5()
        job.pos = 0

        def read(size: int) -> bytes:
            n = min(size, part.length - job.pos)
            if n <= 0:
                return b""
            try:
                data = read_at(self.fd, n, part.offset + job.pos)
            except OSError as exc:
                raise InputError(f"cannot read the input file: {exc.strerror or exc}") from None
            if len(data) != n:
                raise InputError(
                    f"the input file is shorter than expected at offset "
                    f"{part.offset + job.pos}; it changed during the upload"
                )
            job.pos += n
            self.md5.feed(job.md5, data)
            return data

        def seek(offset: int, origin: int) -> int:
            if origin != 0 or offset != 0:
                return pycurl.SEEKFUNC_CANTSEEK
            job.pos = 0
            job.md5 = _md5()
            return pycurl.SEEKFUNC_OK

        c.setopt(pycurl.URL, url)
        c.setopt(pycurl.UPLOAD, 1)
        c.setopt(pycurl.INFILESIZE_LARGE, part.length)
        if UPLOAD_BUFFERSIZE is not None:
            c.setopt(UPLOAD_BUFFERSIZE, UPLOAD_BUFFER)
        c.setopt(pycurl.READFUNCTION, read)
        c.setopt(pycurl.SEEKFUNCTION, seek)
        c.setopt(pycurl.HEADERFUNCTION, _header_collector(job))
        c.setopt(pycurl.WRITEFUNCTION, _discard)
        c.setopt(pycurl.HTTPHEADER, ["Content-Type:", "Transfer-Encoding:"])

    def end(self, c: pycurl.Curl, job: Job) -> Outcome:
        status = job.status
        if status in (403, 404):
            return Outcome.REFRESH
        if status in (408, 429) or status >= 500:
            job.problem = f"HTTP {status} from storage"
            return Outcome.RETRY
        if status != 200:
            raise ApiRefused(
                f"storage refused part {job.part.number}: HTTP {status}", status=status
            )
        if job.pos != job.part.length:
            job.problem = f"sent {job.pos} of {job.part.length} bytes"
            return Outcome.RETRY
        etag = job.headers.get("etag", "").strip().strip('"').lower()
        md5 = self.md5.digest(job.md5)
        if re.fullmatch(r"[0-9a-f]{32}", etag) and etag != md5:
            job.problem = f"ETag {etag} does not match the MD5 {md5} of the bytes sent"
            return Outcome.RETRY
        job.etag = md5  # verified against S3's ETag where that is an MD5
        return Outcome.OK

    def done(self, job: Job) -> None:
        self.on_done(job)

    def moved(self, c: pycurl.Curl) -> int:
        return int(c.getinfo(SIZE_UPLOAD_T))


class DownloadStrategy(Strategy):
    """GET ranges of one object into a preallocated partial file."""

    verb = "download"

    def __init__(
        self,
        path: str,
        size: int,
        url: Callable[[], str],
        refresh: Callable[[], None],
        on_piece: Callable[[int, int], None],
        tick: Callable[[], None] = lambda: None,
    ):
        """on_piece(offset, length): these bytes are in the partial file (written, not
        synced); called for every PIECE_SIZE of a range and for the rest when it finishes."""
        self.path = path
        self.size = size
        self.url = url
        self._refresh = refresh
        self.on_piece = on_piece
        self._tick = tick
        self.generation = 0

    def begin(self, c: pycurl.Curl, job: Job) -> None:
        part = job.part
        start = part.offset + job.kept  # a retry goes on after the pieces already logged
        try:
            fh = BlockWriter(self.path, start, WRITE_BLOCK)
        except FileNotFoundError:
            raise TransientError(
                f"the partial file {self.path} vanished during the download; run again"
            ) from None
        job.gen = self.generation
        job.fh = fh
        job.mark = PIECE_SIZE
        whole = start == 0 and part.end == self.size
        collect = _header_collector(job)

        def header(line: bytes):
            collect(line)
            if line in (b"\r\n", b"\n") and not (100 <= job.status < 200):
                problem = _check_range(job, self.size, whole)
                if problem:
                    job.bad_header = problem
                    return 0  # a length other than len(line) aborts before the body
            return None

        c.setopt(pycurl.URL, self.url())
        c.setopt(pycurl.HTTPGET, 1)
        c.setopt(pycurl.RANGE, f"{start}-{part.end - 1}")
        c.setopt(pycurl.BUFFERSIZE, DOWNLOAD_BUFFER)
        c.setopt(pycurl.HEADERFUNCTION, header)
        c.setopt(pycurl.WRITEDATA, fh)
        c.setopt(pycurl.HTTPHEADER, ["Accept-Encoding: identity"])

    def end(self, c: pycurl.Curl, job: Job) -> Outcome:
        fh, job.fh = job.fh, None
        try:
            written_to = _flushed_position(fh)
        finally:
            close_quietly(fh)
        start = job.part.offset + job.kept_before
        if written_to != job.part.end:
            job.problem = f"received {written_to - start} of {job.part.end - start} bytes"
            return Outcome.RETRY
        return Outcome.OK

    def done(self, job: Job) -> None:
        self._log_piece(job, job.part.end)

    def poll(self, active: dict) -> None:
        # one integer comparison per handle; a ledger line only past the mark, up to the
        # writer's last whole block (no flush: the blocks stay aligned)
        for c, job in active.items():
            if c.getinfo(SIZE_DOWNLOAD_T) >= job.mark:
                self._log_piece(job, job.fh.written_to)
                job.mark = job.kept - job.kept_before + PIECE_SIZE

    def _log_piece(self, job: Job, written_to: int) -> None:
        """Log [last logged point, written_to) of the job's range; its bytes are written."""
        logged_to = job.part.offset + job.kept
        if written_to > logged_to:
            self.on_piece(logged_to, written_to - logged_to)
            job.kept = written_to - job.part.offset

    def refresh(self, job: Job) -> None:
        """One new URL per URL generation: N ranges refused at once ask the API once."""
        if job.gen == self.generation:
            self._refresh()
            self.generation += 1

    def tick(self) -> None:
        self._tick()

    def moved(self, c: pycurl.Curl) -> int:
        return int(c.getinfo(SIZE_DOWNLOAD_T))


def _flushed_position(fh: BlockWriter) -> int:
    """Write what the writer holds; the file offset up to which bytes are written."""
    try:
        fh.flush()
        return fh.written_to
    except OSError as exc:
        what = "disk full" if is_disk_full(exc) else (exc.strerror or str(exc))
        raise OutputError(f"cannot write the download: {what}") from None


def _check_range(job: Job, size: int, whole: bool) -> Optional[GhgaError]:
    """None when the response may be written at the job's range (from where this attempt
    starts: after the pieces already logged), else the error.

    Statuses that are retried or refreshed come back as TransientError; the engine decides
    by the status, not by this error."""
    part, status, headers = job.part, job.status, job.headers
    start, length_expected = part.offset + job.kept_before, part.length - job.kept_before
    if status in (403, 404, 408, 429) or status >= 500:
        return TransientError(f"HTTP {status}")
    length = headers.get("content-length")
    if status == 206:
        match = re.fullmatch(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", headers.get("content-range", ""))
        if not match:
            return ApiRefused(f"{job.label()}: 206 without a valid Content-Range", status=status)
        first, last, total = match.groups()
        if total != "*" and int(total) != size:
            return IntegrityError(
                f"storage has {total} bytes but the object size is {size} "
                f"(Content-Range {headers.get('content-range')!r})"
            )
        if int(first) != start or int(last) != part.end - 1:
            return ApiRefused(
                f"{job.label()}: storage sent Content-Range "
                f"{headers.get('content-range')!r}, expected bytes "
                f"{start}-{part.end - 1}/{size}",
                status=status,
            )
    elif status == 200:
        if not whole:
            return ApiRefused(
                f"{job.label()}: storage ignored the Range header (HTTP 200)", status=status
            )
    else:
        return ApiRefused(f"{job.label()}: unexpected HTTP {status} from storage", status=status)
    if length is None or not length.isdigit() or int(length) != length_expected:
        return ApiRefused(
            f"{job.label()}: Content-Length {length!r}, expected {length_expected}", status=status
        )
    return None


def _header_collector(job: Job) -> Callable[[bytes], None]:
    def collect(line: bytes) -> None:
        text = line.decode("iso-8859-1").strip()
        if text.startswith("HTTP/"):
            fields = text.split()
            job.status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
            job.headers = {}
        elif ":" in text:
            name, value = text.split(":", 1)
            job.headers[name.strip().lower()] = value.strip()

    return collect


def _md5():
    """MD5 as a checksum, not for security (FIPS-mode OpenSSL refuses it otherwise)."""
    return hashlib.md5(usedforsecurity=False)


def _discard(data: bytes) -> None:
    return None
