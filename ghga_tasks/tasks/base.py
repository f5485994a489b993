"""What every ghga task shares: identity parameters, settings, its TransferDir, its failure."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Optional

import luigi
from luigi.parameter import ParameterVisibility

from ..errors import GhgaError, error_from_dict, error_to_dict
from ..settings import Settings, load
from ..transfer_dir import FAILURE, TransferDir

log = logging.getLogger("ghga_tasks")


class ObjectParameter(luigi.Parameter):
    """A parameter holding a Python object (settings, a progress callback)."""


class GhgaTask(luigi.Task):
    """Base of the upload and download tasks (namespace `ghga`).

    Identity is in the luigi parameters (API URL, file id, state dir, and each task's own);
    tuning is in `settings`. `settings` and `progress` are insignificant and private: they
    don't change the task's identity and are never sent to a scheduler (the token lives in
    settings). A task's run() calls one step of upload_steps/download_steps, keeps its outcome
    in `self.outcome` and writes it as its target.
    """

    task_namespace = "ghga"
    direction = "transfers"

    api_url = luigi.Parameter(description="Upload Controller or DRS3 API base URL")
    file_id = luigi.Parameter(description="the file's id")
    state_dir = luigi.Parameter(default="", description="state dir (default: user cache dir)")
    settings = ObjectParameter(
        default=None, significant=False, visibility=ParameterVisibility.PRIVATE
    )
    run_id = luigi.Parameter(
        default="",
        significant=False,
        visibility=ParameterVisibility.PRIVATE,
        description="with a run id, a task that ran leaves its outcome in RUN_FILE",
    )
    progress = ObjectParameter(
        default=None, significant=False, visibility=ParameterVisibility.PRIVATE
    )

    outcome: Any = None  # what run() returned in this process
    failure: Optional[BaseException] = None  # what run() raised in this process

    @property
    def cfg(self) -> Settings:
        if self.settings is None:
            self.settings = load()
        return self.settings

    @property
    def tdir(self) -> TransferDir:
        root = Path(self.state_dir) if self.state_dir else self.cfg.state_root
        return TransferDir(root, self.direction, self.api_url, self.file_id)

    def report(self, done: int, total: int, phase: str) -> None:
        if self.progress is not None:
            self.progress(done, total, phase)

    def on_failure(self, exception: BaseException) -> str:
        """Kept in memory for the runner; written for failure_of(), if the disk lets us."""
        self.failure = exception
        details = error_to_dict(exception)
        try:
            self.tdir.write(FAILURE, details)
        except GhgaError:  # the original error matters more
            pass
        return details["message"]


RUN_FILE = "run-{family}.json"  # a task's outcome in a run with a run id (batches: any process)


@GhgaTask.event_handler(luigi.Event.PROCESSING_TIME)
def record_run(task: GhgaTask, seconds: float) -> None:
    """In the process that ran the task: its outcome and run time, tagged with the run id, so
    a batch reads what each of its tasks did, whichever worker process ran it."""
    if not isinstance(task, GhgaTask) or not task.run_id:
        return
    outcome = task.outcome
    data = dataclasses.asdict(outcome) if dataclasses.is_dataclass(outcome) else {}
    data.pop("source", None)
    try:
        task.tdir.write(
            RUN_FILE.format(family=task.task_family),
            {"run": task.run_id, "seconds": seconds, "outcome": data},
            sync=False,
        )
    except GhgaError as exc:  # the run then says 0 bytes moved; the file itself is done
        log.warning("cannot record the outcome of %s: %s", task, exc)


class Marker(luigi.LocalTarget):
    """A small JSON fact in a TransferDir; complete() never touches the network."""

    def __init__(self, tdir: TransferDir, name: str):
        super().__init__(str(tdir.file(name)))
        self.tdir, self.name = tdir, name

    def read(self) -> Optional[dict]:
        return self.tdir.read(self.name)

    def write(self, data: dict, sync: bool = True) -> None:
        self.tdir.write(self.name, data, sync=sync)


def failure_of(task: GhgaTask) -> Optional[GhgaError]:
    """The typed error a ghga task (or one it required) failed with in the last run, if any,
    with its fields (exit_code, and e.g. status and exception_id of an ApiRefused).

    For your own luigi pipelines: luigi.build() reports failure, this says why."""
    if isinstance(task.failure, GhgaError):
        return task.failure
    details = task.tdir.read(FAILURE)
    return error_from_dict(details) if details else None
