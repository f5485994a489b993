"""Upload DAG: RequestURL → TransferParts → ConfirmUpload (one task per file), each a thin
adapter over one step of ghga_tasks.upload_steps."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Iterator

import luigi

from ..clients import UploadClient
from ..errors import GhgaError
from ..transfer_dir import ACCEPTED, ATTEMPT, CONFIRMED, PARTS
from ..upload_steps import Upload, source_facts
from .base import GhgaTask, Marker


class UploadTask(GhgaTask):
    direction = "uploads"
    file_path = luigi.Parameter(description="the local file to upload")

    @contextlib.contextmanager
    def step(self) -> Iterator[Upload]:
        """The upload's steps under the transfer's lock, with a client closed afterwards."""
        client = UploadClient(self.api_url, self.cfg)
        try:
            yield Upload(client, self.tdir, self.file_id, self.file_path, self.cfg, self.report)
        finally:
            client.close()

    def of_this_file(self, name: str) -> bool:
        """The target `name` exists and was made from the file at file_path as it is now
        (the same path, size, mtime and inode): another file is not complete."""
        recorded = (self.tdir.read(name) or {}).get("source")
        try:
            return recorded == source_facts(self.file_path)
        except GhgaError:
            return False

    def upstream(self, cls, **extra):
        return cls(
            api_url=self.api_url,
            file_id=self.file_id,
            state_dir=self.state_dir,
            file_path=self.file_path,
            settings=self.settings,
            run_id=self.run_id,
            progress=self.progress,
            **extra,
        )


class RequestURL(UploadTask):
    """Start the upload attempt, or adopt the pending one. Target: the attempt."""

    def output(self) -> Marker:
        return Marker(self.tdir, ATTEMPT)

    def run(self) -> None:
        with self.tdir.lock(), self.step() as upload:
            if not self.complete():
                self.outcome = upload.start_attempt()  # start_attempt writes the target


class TransferParts(UploadTask):
    """PUT every part not yet in the ledger. Target: the parts stored, with their MD5s."""

    def requires(self) -> RequestURL:
        return self.upstream(RequestURL)

    def output(self) -> Marker:
        return Marker(self.tdir, PARTS)

    def complete(self) -> bool:
        return self.of_this_file(PARTS)

    def run(self) -> None:
        with self.tdir.lock(), self.step() as upload:
            if not self.complete():
                self.outcome = upload.send_parts()
                self.output().write(dataclasses.asdict(self.outcome))


class ConfirmUpload(UploadTask):
    """Confirm the attempt ("already uploaded/accepted" is success); with wait=True, also
    wait until the server accepted the file. Target: the confirmation."""

    wait = luigi.BoolParameter(default=False, description="wait until accepted")

    def requires(self) -> TransferParts:
        return self.upstream(TransferParts)

    def output(self) -> Marker:
        return Marker(self.tdir, ACCEPTED if self.wait else CONFIRMED)

    def complete(self) -> bool:
        return self.of_this_file(ACCEPTED if self.wait else CONFIRMED)

    def run(self) -> None:
        with self.tdir.lock(), self.step() as upload:
            if not self.complete():
                self.outcome = upload.confirm(self.input().read() or {}, self.wait)
                self.output().write(dataclasses.asdict(self.outcome))
