"""Download DAG: PollOutbox → FetchFile (one task per file), each a thin adapter over one
step of ghga_tasks.download_steps."""

from __future__ import annotations

import contextlib
from typing import Iterator

import luigi
from luigi.parameter import ParameterVisibility

from ..clients import DrsClient
from ..download_steps import Download, final_path, is_in_place
from ..transfer_dir import DONE, OBJECT
from .base import GhgaTask, Marker


class DownloadTask(GhgaTask):
    direction = "downloads"

    ask_once = luigi.BoolParameter(
        default=False,
        significant=False,
        visibility=ParameterVisibility.PRIVATE,
        description="in a batch: ask DRS once, and fail with NotStagedYet while it stages",
    )

    @contextlib.contextmanager
    def step(self) -> Iterator[Download]:
        client = DrsClient(self.api_url, self.cfg)
        try:
            yield Download(client, self.tdir, self.file_id, self.cfg, self.report)
        finally:
            client.close()


class PollOutbox(DownloadTask):
    """Ask DRS until the object is staged. Target: its id, size, checksums, name (no URL)."""

    def output(self) -> Marker:
        return Marker(self.tdir, OBJECT)

    def run(self) -> None:
        with self.step() as download:
            self.outcome = download.poll_outbox(self.ask_once)
        self.output().write(self.outcome)


class FetchFile(DownloadTask):
    """Ranged GETs into the partial file, verified, then moved into output_dir.
    Target: done.json, written by the step just before the file is renamed into place."""

    output_dir = luigi.Parameter(description="where the file goes")
    overwrite = luigi.BoolParameter(default=False, significant=False)

    def requires(self) -> PollOutbox:
        return PollOutbox(
            api_url=self.api_url,
            file_id=self.file_id,
            state_dir=self.state_dir,
            settings=self.settings,
            run_id=self.run_id,
            progress=self.progress,
            ask_once=self.ask_once,
        )

    def output(self) -> Marker:
        return Marker(self.tdir, DONE)

    def complete(self) -> bool:
        return is_in_place(self.tdir, final_path(self.output_dir, self.file_id))

    def run(self) -> None:
        final_path(self.output_dir, self.file_id)  # a bad file id fails before any lock
        with self.tdir.lock(), self.step() as download:
            self.outcome = download.fetch(self.output_dir, self.overwrite, self.ask_once)
