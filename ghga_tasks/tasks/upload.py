"""Upload DAG: RequestURL → TransferParts → ConfirmUpload (one task per file)."""

from __future__ import annotations

import os
import time

import luigi

from .. import parts as planning
from .. import state
from ..clients import UploadClient
from ..errors import ApiRefused, InputError, IntegrityError, TransientError, WaitTimeout
from ..fileio import O_BINARY
from ..hashing import Md5Feeder, PrefixHasher
from ..prefetch import UrlPrefetcher
from ..transfer import Engine, Job, UploadStrategy
from .base import GhgaTask, Marker, stopwatch

LIVE = ("pending", "uploaded", "accepted")
DEAD = ("failed", "cancelled", "rejected")


def source_facts(file_path: str) -> dict:
    """Size and mtime of the local file; raises InputError when it can't be read."""
    try:
        st = os.stat(file_path)
        with open(file_path, "rb"):
            pass
    except FileNotFoundError:
        raise InputError(f"input file not found: {file_path}") from None
    except IsADirectoryError:
        raise InputError(f"input is a directory, not a file: {file_path}") from None
    except OSError as exc:
        raise InputError(f"cannot read input file {file_path}: {exc.strerror or exc}") from None
    if not os.path.isfile(file_path):
        raise InputError(f"input is not a regular file: {file_path}")
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def check_registered_size(meta: dict, source: dict, file_id: str, file_path: str) -> None:
    if int(meta["size"]) != source["size"]:
        raise IntegrityError(f"{file_path} has {source['size']} bytes but file {file_id!r} is "
                             f"registered with {meta['size']} bytes")


class UploadTask(GhgaTask):
    direction = "uploads"
    file_path = luigi.Parameter(description="the local file to upload")

    def client(self) -> UploadClient:
        return UploadClient(self.api_url, self.cfg)

    def start_attempt(self, client: UploadClient) -> dict:
        """Adopt or start an attempt, record it in attempt.json and return it."""
        source = source_facts(self.file_path)
        meta = client.get_file(self.file_id)
        check_registered_size(meta, source, self.file_id, self.file_path)
        attempt, adopted = client.create_upload(self.file_id)
        record = {
            "upload_id": attempt["upload_id"], "file_id": self.file_id,
            "part_size": int(attempt["part_size"]), "status": attempt["status"],
            "size": int(meta["size"]), "registered_sha256": meta.get("sha256"),
            "file_path": os.path.abspath(self.file_path), "source": source, "adopted": adopted,
        }
        state.write_json(self.dir / "attempt.json", record)
        return record


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
        current = client.get_upload(attempt["upload_id"])["status"]
        if current in DEAD:
            attempt = self.start_attempt(client)
            current = attempt["status"]
        source = source_facts(self.file_path)
        check_registered_size({"size": attempt["size"]}, source, self.file_id, self.file_path)
        if current in ("uploaded", "accepted"):
            # a finished attempt (ours after a crash, or adopted): nothing left to send
            self.output().write({"upload_id": attempt["upload_id"], "sha256": None,
                                 "size": attempt["size"]})
            self.record_run(bytes_transferred=0, bytes_resumed=attempt["size"],
                            seconds=elapsed(), sha256=None)
            return
        size, part_size = attempt["size"], attempt["part_size"]
        plan = planning.upload_parts(size, part_size)
        ledger = state.Ledger(self.dir / "parts.jsonl", {
            "upload_id": attempt["upload_id"], "part_size": part_size, "size": size,
            "mtime_ns": source["mtime_ns"]})
        done = {e["n"]: e for e in ledger.entries if "n" in e}
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
                                "etag": job.etag}], sync=False)
                intervals.append((p.offset, p.length))
                hasher.advance(planning.contiguous_prefix(intervals))

            engine = Engine(self.cfg, progress=lambda n: self.report(resumed + n, size, "upload"))
            self.report(resumed, size, "upload")
            md5 = Md5Feeder()
            urls = UrlPrefetcher(lambda n: client.part_url(attempt["upload_id"], n),
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
                             "parts": len(plan)})
        self.record_run(bytes_transferred=size - resumed, bytes_resumed=resumed,
                        seconds=elapsed(), sha256=digest)


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

    def _reset(self) -> None:
        for name in ("attempt.json", "parts.json", "parts.jsonl", "confirmed.json"):
            state.remove(self.dir / name)

    def _confirm(self, client: UploadClient) -> None:
        parts = self.input().read() or {}
        upload_id = parts["upload_id"]
        confirmed = Marker(str(self.dir / "confirmed.json"))
        if not confirmed.exists():
            try:
                current = client.set_status(upload_id, "uploaded")
            except ApiRefused as exc:
                if exc.exception_id == "uploadStatusChange":
                    self._reset()
                    raise TransientError(f"the server could not complete upload {upload_id}: "
                                         f"{exc.message}; run again to start a new attempt"
                                         ) from None
                raise
            self._check_status(upload_id, current or "uploaded")
            confirmed.write({"upload_id": upload_id, "status": current or "uploaded",
                             "sha256": parts.get("sha256")})
        if self.wait:
            status = self._wait_accepted(client, upload_id)
            self.output().write({"upload_id": upload_id, "status": status,
                                 "sha256": parts.get("sha256")})

    def _check_status(self, upload_id: str, status: str) -> None:
        if status == "rejected":
            raise IntegrityError(f"the server rejected upload {upload_id} of {self.file_id!r} "
                                 "(its checksum does not match the registered one)")
        if status in DEAD:
            self._reset()
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

