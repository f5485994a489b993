"""Upload DAG: RequestURL → TransferParts → ConfirmUpload (one task per file)."""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path
from typing import List

import luigi

from .. import parts as planning
from .. import state
from ..clients import UploadClient
from ..errors import (ApiRefused, InputError, IntegrityError, PartsNotStored, TransientError,
                      WaitTimeout)
from ..fileio import O_BINARY
from ..hashing import Md5Feeder, PrefixHasher
from ..prefetch import UrlPrefetcher
from ..transfer import Engine, Job, UploadStrategy
from .base import GhgaTask, Marker, stopwatch

log = logging.getLogger("ghga_tasks")

DEAD = ("failed", "cancelled", "rejected")
FINISHED = ("uploaded", "accepted")


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
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def check_registered_size(meta: dict, source: dict, file_id: str, file_path: str) -> None:
    if int(meta["size"]) != source["size"]:
        raise IntegrityError(f"{file_path} has {source['size']} bytes but file {file_id!r} is "
                             f"registered with {meta['size']} bytes")


def parts_ledger(directory: Path, attempt: dict, mtime_ns: int) -> state.Ledger:
    """The ledger of the parts stored in this attempt, each with the MD5 S3 confirmed."""
    return state.Ledger(directory / "parts.jsonl", {
        "upload_id": attempt["upload_id"], "part_size": attempt["part_size"],
        "size": attempt["size"], "mtime_ns": mtime_ns})


class UploadTask(GhgaTask):
    direction = "uploads"
    file_path = luigi.Parameter(description="the local file to upload")

    def client(self) -> UploadClient:
        return UploadClient(self.api_url, self.cfg)

    @property
    def writer(self) -> str:
        return state.writer_id(state.ensure_dir(self.dir))

    def start_attempt(self, client: UploadClient) -> dict:
        """Adopt or start an attempt, record it in attempt.json and return it."""
        source = source_facts(self.file_path)
        meta = client.get_file(self.file_id)
        check_registered_size(meta, source, self.file_id, self.file_path)
        attempt, adopted = client.create_upload(self.file_id, self.writer)
        record = {
            "upload_id": attempt["upload_id"], "file_id": self.file_id,
            "part_size": int(attempt["part_size"]), "status": attempt["status"],
            "sha256": attempt.get("sha256"),
            "size": int(meta["size"]), "registered_sha256": meta.get("sha256"),
            "file_path": os.path.abspath(self.file_path), "source": source, "adopted": adopted,
        }
        state.write_json(self.dir / "attempt.json", record)
        return record

    def forget_attempt(self) -> None:
        """Drop every fact about the current attempt: the next step starts or adopts anew."""
        for name in ("attempt.json", "parts.json", "parts.jsonl", "confirmed.json"):
            state.remove(self.dir / name)


class RequestURL(UploadTask):
    """Start the upload attempt, or adopt the pending one. Target: the attempt, as JSON."""

    def output(self) -> Marker:
        return Marker(str(self.dir / "attempt.json"))

    def run(self) -> None:
        self.run_locked(self.start_attempt)


class TransferParts(UploadTask):
    """PUT every part not yet in the ledger. Target: parts.json (every part stored)."""

    def requires(self) -> RequestURL:
        return RequestURL(api_url=self.api_url, file_id=self.file_id, state_dir=self.state_dir,
                          file_path=self.file_path, settings=self.settings,
                          progress=self.progress)

    def output(self) -> Marker:
        return Marker(str(self.dir / "parts.json"))

    def run(self) -> None:
        self.run_locked(self._transfer)

    def _transfer(self, client: UploadClient) -> None:
        elapsed = stopwatch()
        attempt = state.read_json(self.dir / "attempt.json") or self.start_attempt(client)
        current = self._server_view(client, attempt["upload_id"])
        if current is None or current["status"] in DEAD:
            self.forget_attempt()
            attempt = self.start_attempt(client)
            current = {"status": attempt["status"], "sha256": attempt.get("sha256")}
        source = source_facts(self.file_path)
        check_registered_size({"size": attempt["size"]}, source, self.file_id, self.file_path)
        if current["status"] in FINISHED:
            # a finished attempt (adopted from another state dir): it must hold this file
            digest = self._check_finished(attempt, current)
            self.output().write({"upload_id": attempt["upload_id"], "sha256": digest,
                                 "size": attempt["size"], "status": current["status"]})
            self.record_run(bytes_transferred=0, bytes_resumed=attempt["size"],
                            seconds=elapsed(), sha256=digest)
            return
        size, part_size = attempt["size"], attempt["part_size"]
        plan = planning.upload_parts(size, part_size)
        ledger = parts_ledger(self.dir, attempt, source["mtime_ns"])
        done = {e["n"]: e for e in ledger.entries if "n" in e and "md5" in e}
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
                # no fsync: a line lost in a power cut only means sending that part again
                ledger.append([{"n": p.number, "offset": p.offset, "size": p.length,
                                "md5": job.etag}], sync=False)
                done[p.number] = {"md5": job.etag}
                intervals.append((p.offset, p.length))
                hasher.advance(planning.contiguous_prefix(intervals))

            engine = Engine(self.cfg, progress=lambda n: self.report(resumed + n, size, "upload"))
            self.report(resumed, size, "upload")
            md5 = Md5Feeder()
            writer = self.writer
            urls = UrlPrefetcher(lambda n: client.part_url(attempt["upload_id"], n, writer),
                                 [p.number for p in todo], ahead=self.cfg.parallel)
            try:
                engine.run(UploadStrategy(fd, urls.get, on_done, md5), todo)
            finally:
                urls.close()
                md5.close()
            digest = hasher.finish(size)["sha256"]
            finished = True
        finally:
            os.close(fd)
            ledger.close()
            if not finished:
                hasher.close(abort=True)
        if os.stat(self.file_path).st_mtime_ns != source["mtime_ns"]:
            state.remove(self.dir / "parts.jsonl")
            raise TransientError(f"{self.file_path} changed while it was being uploaded; "
                                 "run again to upload it anew")
        registered = attempt.get("registered_sha256")
        if registered and registered.lower() != digest:
            raise IntegrityError(f"SHA-256 of {self.file_path} is {digest}, but file "
                                 f"{self.file_id!r} is registered with {registered}")
        self.output().write({"upload_id": attempt["upload_id"], "sha256": digest, "size": size,
                             "status": "pending",
                             "parts_md5": [done[p.number]["md5"] for p in plan]})
        self.record_run(bytes_transferred=size - resumed, bytes_resumed=resumed,
                        bytes_resent=engine.bytes_resent, seconds=elapsed(), sha256=digest)

    def _server_view(self, client: UploadClient, upload_id: str):
        """The attempt as the server sees it; None when the server no longer knows it."""
        try:
            return client.get_upload(upload_id)
        except ApiRefused as exc:
            if exc.exception_id != "noSuchUpload":
                raise
        log.warning("the server no longer knows upload %s of %r; starting a new attempt",
                    upload_id, self.file_id)
        return None

    def _check_finished(self, attempt: dict, current: dict) -> str:
        """The SHA-256 of the local file, which must be what the finished attempt holds."""
        self.report(0, 0, "checking the finished upload against the local file")
        digest = PrefixHasher(self.file_path).finish(attempt["size"])["sha256"]
        upload_id, status, held = attempt["upload_id"], current["status"], current.get("sha256")
        if not held:
            raise ApiRefused(f"file {self.file_id!r} already has an upload ({upload_id}, "
                             f"{status}) whose SHA-256 the server does not say; cannot tell "
                             f"whether it holds {self.file_path}")
        if held.lower() != digest:
            raise IntegrityError(f"file {self.file_id!r} already holds other bytes (upload "
                                 f"{upload_id}, {status}, SHA-256 {held}) than {self.file_path} "
                                 f"(SHA-256 {digest}); a registered file is uploaded once")
        return digest


class ConfirmUpload(UploadTask):
    """PATCH the attempt to `uploaded` ("already uploaded/accepted" is success).

    With wait=True, also poll until the server accepted the file."""

    wait = luigi.BoolParameter(default=False, description="wait until accepted")

    def requires(self) -> TransferParts:
        return TransferParts(api_url=self.api_url, file_id=self.file_id,
                             state_dir=self.state_dir, file_path=self.file_path,
                             settings=self.settings, progress=self.progress)

    def output(self) -> Marker:
        return Marker(str(self.dir / ("accepted.json" if self.wait else "confirmed.json")))

    def run(self) -> None:
        self.run_locked(self._confirm)

    def _confirm(self, client: UploadClient) -> None:
        parts = self.input().read() or {}
        upload_id = parts["upload_id"]
        confirmed = Marker(str(self.dir / "confirmed.json"))
        if not confirmed.exists():
            current = parts.get("status", "pending")
            if current == "pending":
                current = self._confirm_parts(client, upload_id, parts) or "uploaded"
            self._check_status(upload_id, current)
            confirmed.write({"upload_id": upload_id, "status": current,
                             "sha256": parts.get("sha256")})
        if self.wait:
            status = self._wait_accepted(client, upload_id)
            self.output().write({"upload_id": upload_id, "status": status,
                                 "sha256": parts.get("sha256")})

    def _confirm_parts(self, client: UploadClient, upload_id: str, parts: dict):
        """PATCH uploaded with the verified part MD5s; parts the server lacks go back to
        TransferParts, a completion that failed starts a new attempt."""
        try:
            return client.confirm(upload_id, parts["parts_md5"], parts["sha256"], self.writer)
        except PartsNotStored as exc:
            self._send_again(exc.parts)
            raise
        except ApiRefused as exc:
            if exc.exception_id == "uploadStatusChange":
                self.forget_attempt()
                raise TransientError(f"the server could not complete upload {upload_id}: "
                                     f"{exc.message}; run again to start a new attempt"
                                     ) from None
            raise

    def _send_again(self, numbers: List[int]) -> None:
        attempt = state.read_json(self.dir / "attempt.json") or {}
        if attempt:
            ledger = parts_ledger(self.dir, attempt, source_facts(self.file_path)["mtime_ns"])
            ledger.replace([e for e in ledger.entries if e.get("n") not in set(numbers)])
            ledger.close()
        state.remove(self.dir / "parts.json")

    def _check_status(self, upload_id: str, status: str) -> None:
        if status == "rejected":
            raise IntegrityError(f"the server rejected upload {upload_id} of {self.file_id!r} "
                                 "(the object's SHA-256 is not the registered or the confirmed one)")
        if status in DEAD:
            self.forget_attempt()
            raise TransientError(f"upload {upload_id} is {status} at the server; "
                                 "run again to start a new attempt")

    def _wait_accepted(self, client: UploadClient, upload_id: str) -> str:
        deadline = time.monotonic() + self.cfg.max_wait
        delay = 0.5
        while True:
            status = client.get_upload(upload_id)["status"]
            if status == "accepted":
                return status
            self._check_status(upload_id, status)
            if time.monotonic() + delay > deadline:
                raise WaitTimeout(f"upload {upload_id} was not accepted within "
                                     f"{self.cfg.max_wait:g} s (--max-wait); it is {status}")
            self.report(0, 0, f"waiting for acceptance ({status})")
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)

