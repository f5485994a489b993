"""The steps of one file's upload, without luigi: start or adopt an attempt, send the parts,
confirm (and wait for acceptance). Each returns a typed outcome; ghga_tasks.tasks.upload
runs them as RequestURL → TransferParts → ConfirmUpload.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
import time
from typing import List, Optional

from . import parts as planning
from .clients import UploadClient
from .errors import (
    ApiRefused,
    InputError,
    IntegrityError,
    PartsNotStored,
    TransientError,
    WaitTimeout,
)
from .fileio import O_BINARY
from .hashing import Md5Feeder, PrefixHasher
from .prefetch import UrlPrefetcher
from .progress import Progress, WaitNotice, no_progress
from .settings import Settings
from .strategies import UploadStrategy
from .transfer import Engine, Job
from .transfer_dir import ATTEMPT, CONFIRMED, PARTS, PARTS_LEDGER, TransferDir

log = logging.getLogger("ghga_tasks")

DEAD = ("failed", "cancelled", "rejected")
FINISHED = ("uploaded", "accepted")


@dataclasses.dataclass
class PartsStored:
    """TransferParts' outcome: every part of the attempt is stored (or it was finished)."""

    upload_id: str
    size: int
    sha256: str
    status: str  # pending, or uploaded/accepted for an adopted attempt
    parts_md5: Optional[List[str]]  # what the confirmation names; None when finished
    source: Optional[dict]  # the local file they are of (source_facts)
    bytes_transferred: int = 0
    bytes_resumed: int = 0
    bytes_resent: int = 0
    parts: int = 0  # parts of the attempt (0: nothing to move)
    url_refreshes: int = 0
    seconds: float = 0.0


@dataclasses.dataclass
class Confirmation:
    """ConfirmUpload's outcome: the attempt as the server last said."""

    upload_id: str
    status: str
    sha256: Optional[str]
    source: Optional[dict] = None  # the local file it was for (source_facts)


def source_facts(file_path: str) -> dict:
    """Size and mtime of the local file; raises InputError when it can't be read.

    Anything but a regular file is refused before it is opened (opening a FIFO blocks)."""
    try:
        st = os.stat(file_path)
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"input is a directory, not a file: {file_path}")
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"input is not a regular file: {file_path}")
        with open(file_path, "rb"):
            pass
    except FileNotFoundError:
        raise InputError(f"input file not found: {file_path}") from None
    except OSError as exc:
        raise InputError(f"cannot read input file {file_path}: {exc.strerror or exc}") from None
    return {
        "path": os.path.realpath(file_path),  # engines stage inputs as fresh symlinks
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "inode": st.st_ino,
    }


def check_registered_size(size: int, source: dict, file_id: str, file_path: str) -> None:
    if int(size) != source["size"]:
        raise IntegrityError(
            f"{file_path} has {source['size']} bytes but file {file_id!r} is "
            f"registered with {size} bytes"
        )


@dataclasses.dataclass
class Upload:
    """One file's upload through one API client; its facts live in `tdir`."""

    client: UploadClient
    tdir: TransferDir
    file_id: str
    file_path: str
    settings: Settings
    report: Progress = no_progress

    # RequestURL

    def start_attempt(self) -> dict:
        """Adopt or start an attempt; recorded in ATTEMPT and returned."""
        source = source_facts(self.file_path)
        meta = self.client.get_file(self.file_id)
        check_registered_size(meta["size"], source, self.file_id, self.file_path)
        attempt, adopted = self.client.create_upload(self.file_id, self.tdir.writer_id())
        record = {
            "upload_id": attempt["upload_id"],
            "file_id": self.file_id,
            "part_size": int(attempt["part_size"]),
            "status": attempt["status"],
            "sha256": attempt.get("sha256"),
            "size": int(meta["size"]),
            "registered_sha256": meta.get("sha256"),
            "file_path": os.path.abspath(self.file_path),
            "source": source,
            "adopted": adopted,
        }
        self.tdir.write(ATTEMPT, record)
        return record

    # TransferParts

    def send_parts(self) -> PartsStored:
        """PUT every part not yet in the ledger, on the live attempt (a dead or forgotten
        one is replaced; a finished one must hold this file)."""
        started = time.monotonic()
        attempt = self.tdir.read(ATTEMPT) or self.start_attempt()
        current = self._server_view(attempt["upload_id"])
        if current is None or current["status"] in DEAD:
            self.tdir.forget_attempt()
            attempt = self.start_attempt()
            current = {"status": attempt["status"], "sha256": attempt.get("sha256")}
        source = source_facts(self.file_path)
        check_registered_size(attempt["size"], source, self.file_id, self.file_path)
        if current["status"] in FINISHED:
            digest = self._check_finished(attempt, current)
            return PartsStored(
                attempt["upload_id"],
                attempt["size"],
                digest,
                current["status"],
                None,
                source,
                bytes_resumed=attempt["size"],
                seconds=time.monotonic() - started,
            )
        stored = self._send(attempt, source)
        stored.seconds = time.monotonic() - started
        return stored

    def _send(self, attempt: dict, source: dict) -> PartsStored:
        size, part_size = attempt["size"], attempt["part_size"]
        plan = planning.upload_parts(size, part_size)
        ledger = self.tdir.parts_ledger(attempt, source)
        done = {e["n"]: e["md5"] for e in ledger.entries if "n" in e and "md5" in e}
        resumed = sum(p.length for p in plan if p.number in done)
        todo = [p for p in plan if p.number not in done]
        intervals = [(p.offset, p.length) for p in plan if p.number in done]
        fd = os.open(self.file_path, os.O_RDONLY | O_BINARY)
        hasher = PrefixHasher(self.file_path)
        hasher.advance(planning.contiguous_prefix(intervals))
        finished = False
        try:

            def on_done(job: Job) -> None:
                p = job.part
                # no fsync: a line lost in a power cut or a kill only means sending that
                # part again
                ledger.append_later(
                    [{"n": p.number, "offset": p.offset, "size": p.length, "md5": job.etag}]
                )
                done[p.number] = job.etag
                intervals.append((p.offset, p.length))
                hasher.advance(planning.contiguous_prefix(intervals))

            engine = Engine(
                self.settings, progress=lambda n: self.report(resumed + n, size, "upload")
            )
            self.report(resumed, size, "upload")
            md5 = Md5Feeder()
            writer = self.tdir.writer_id()
            urls = UrlPrefetcher(
                lambda n: self.client.part_url(attempt["upload_id"], n, writer),
                [p.number for p in todo],
                ahead=2 * self.settings.parallel,
                fetchers=self.settings.parallel,
            )
            try:
                engine.run(UploadStrategy(fd, urls.get, on_done, md5), todo)
            finally:
                urls.close()
                md5.close()
            try:
                digest = hasher.finish(size)["sha256"]
            except OSError:  # it shrank or vanished: the check below says so
                digest = ""
            finished = True
        finally:
            os.close(fd)
            ledger.close()
            if not finished:
                hasher.close(abort=True)
        try:
            changed = not digest or source_facts(self.file_path) != source
        except InputError:
            changed = True
        if changed:
            self.tdir.remove(PARTS_LEDGER)
            raise TransientError(
                f"{self.file_path} changed while it was being uploaded; run again to upload it anew"
            )
        registered = attempt.get("registered_sha256")
        if registered and registered.lower() != digest:
            raise IntegrityError(
                f"SHA-256 of {self.file_path} is {digest}, but file "
                f"{self.file_id!r} is registered with {registered}"
            )
        return PartsStored(
            attempt["upload_id"],
            size,
            digest,
            "pending",
            [done[p.number] for p in plan],
            source,
            bytes_transferred=size - resumed,
            bytes_resumed=resumed,
            bytes_resent=engine.bytes_resent,
            parts=len(plan),
            url_refreshes=engine.url_refreshes,
        )

    def _server_view(self, upload_id: str) -> Optional[dict]:
        """The attempt as the server sees it; None when the server no longer knows it."""
        try:
            return self.client.get_upload(upload_id)
        except ApiRefused as exc:
            if exc.exception_id != "noSuchUpload":
                raise
        log.warning(
            "the server no longer knows upload %s of %r; starting a new attempt",
            upload_id,
            self.file_id,
        )
        return None

    def _check_finished(self, attempt: dict, current: dict) -> str:
        """The SHA-256 of the local file, which must be what the finished attempt holds."""
        self.report(0, 0, "checking the finished upload against the local file")
        digest = PrefixHasher(self.file_path).finish(attempt["size"])["sha256"]
        upload_id, status, held = attempt["upload_id"], current["status"], current.get("sha256")
        if not held:
            raise ApiRefused(
                f"file {self.file_id!r} already has an upload ({upload_id}, "
                f"{status}) whose SHA-256 the server does not say; cannot tell "
                f"whether it holds {self.file_path}"
            )
        if held.lower() != digest:
            raise IntegrityError(
                f"file {self.file_id!r} already holds other bytes (upload "
                f"{upload_id}, {status}, SHA-256 {held}) than {self.file_path} "
                f"(SHA-256 {digest}); a registered file is uploaded once"
            )
        return digest

    # ConfirmUpload

    def confirm(self, stored: dict, wait: bool) -> Confirmation:
        """PATCH the attempt to uploaded ("already uploaded/accepted" is success); with
        `wait`, poll until the server accepted it."""
        upload_id, sha256 = stored["upload_id"], stored.get("sha256")
        confirmed = self.tdir.read(CONFIRMED)
        if confirmed is None or confirmed.get("source") != stored.get("source"):
            status = stored.get("status", "pending")
            if status == "pending":
                status = self._confirm_parts(upload_id, stored)
                if status is None:
                    status = "uploaded"
                else:  # already confirmed: by us (an answer lost), or by another writer
                    self._check_holds(upload_id, self.client.get_upload(upload_id), sha256)
            self._check_status(upload_id, status)
            self.tdir.write(
                CONFIRMED,
                {
                    "upload_id": upload_id,
                    "status": status,
                    "sha256": sha256,
                    "source": stored.get("source"),
                },
            )
        else:
            status = confirmed["status"]
        if wait:
            status = self._wait_accepted(upload_id, sha256)
        return Confirmation(upload_id, status, sha256, source_facts(self.file_path))

    def _confirm_parts(self, upload_id: str, stored: dict) -> Optional[str]:
        """Confirm with the verified part MD5s; parts the server lacks go back to
        TransferParts, a completion that failed starts a new attempt."""
        try:
            return self.client.confirm(
                upload_id, stored["parts_md5"], stored["sha256"], self.tdir.writer_id()
            )
        except PartsNotStored as exc:
            self._send_again(exc.parts)
            raise
        except ApiRefused as exc:
            if exc.exception_id == "uploadStatusChange":
                self.tdir.forget_attempt()
                raise TransientError(
                    f"the server could not complete upload {upload_id}: "
                    f"{exc.message}; run again to start a new attempt"
                ) from None
            raise

    def _send_again(self, numbers: List[int]) -> None:
        attempt = self.tdir.read(ATTEMPT)
        if attempt:
            ledger = self.tdir.parts_ledger(attempt, source_facts(self.file_path))
            ledger.replace([e for e in ledger.entries if e.get("n") not in set(numbers)])
            ledger.close()
        self.tdir.remove(PARTS)

    def _check_holds(self, upload_id: str, attempt: dict, sha256: Optional[str]) -> None:
        """The attempt was confirmed with this file's SHA-256, or it holds other bytes."""
        held = attempt.get("sha256")
        if held and sha256 and held.lower() != sha256:
            raise IntegrityError(
                f"upload {upload_id} of {self.file_id!r} was confirmed with other bytes "
                f"(SHA-256 {held}) than {self.file_path} (SHA-256 {sha256}); another client "
                "completed it"
            )

    def _check_status(self, upload_id: str, status: str) -> None:
        if status == "rejected":
            self.tdir.forget_attempt()  # a new attempt may send the file again
            raise IntegrityError(
                f"the server rejected upload {upload_id} of {self.file_id!r} "
                "(the object's SHA-256 is not the registered or the confirmed "
                "one); run again to upload it anew"
            )
        if status in DEAD:
            self.tdir.forget_attempt()
            raise TransientError(
                f"upload {upload_id} is {status} at the server; run again to start a new attempt"
            )

    def _wait_accepted(self, upload_id: str, sha256: Optional[str]) -> str:
        deadline = time.monotonic() + self.settings.max_wait
        notice = WaitNotice(log)
        delay = 0.5
        while True:
            attempt = self.client.get_upload(upload_id)
            self._check_holds(upload_id, attempt, sha256)
            status = attempt["status"]
            if status == "accepted":
                return status
            self._check_status(upload_id, status)
            if time.monotonic() + delay > deadline:
                raise WaitTimeout(
                    f"upload {upload_id} was not accepted within "
                    f"{self.settings.max_wait:g} s (--max-wait); it is {status}"
                )
            self.report(0, 0, f"waiting for acceptance ({status})")
            notice(
                f"{self.file_id}: waiting for the server to accept upload {upload_id} (it is "
                f"{status}; for at most --max-wait {self.settings.max_wait:g} s in all)"
            )
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)
