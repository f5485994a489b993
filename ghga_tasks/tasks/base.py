"""What every ghga task shares: identity parameters, settings, state dir, failure file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import luigi
from luigi.parameter import ParameterVisibility

from .. import state
from ..errors import GhgaError, error_from_dict, error_to_dict
from ..settings import Settings, load

FAILURE_FILE = "failure.json"
RUN_FILE = "run.json"


class ObjectParameter(luigi.Parameter):
    """A parameter holding a Python object (settings, a progress callback)."""


class GhgaTask(luigi.Task):
    """Base of the upload and download tasks (namespace `ghga`).

    `settings` and `progress` are insignificant and private: they don't change the task's
    identity and are never sent to a scheduler (the token lives in settings).
    """

    task_namespace = "ghga"
    direction = "transfers"

    api_url = luigi.Parameter(description="Upload Controller or DRS3 API base URL")
    file_id = luigi.Parameter(description="the file's id")
    state_dir = luigi.Parameter(default="", description="state dir (default: user cache dir)")
    settings = ObjectParameter(default=None, significant=False,
                               visibility=ParameterVisibility.PRIVATE)
    progress = ObjectParameter(default=None, significant=False,
                               visibility=ParameterVisibility.PRIVATE)

    @property
    def cfg(self) -> Settings:
        if self.settings is None:
            self.settings = load()
        return self.settings

    @property
    def root(self) -> Path:
        return Path(self.state_dir) if self.state_dir else self.cfg.state_root

    @property
    def dir(self) -> Path:
        return state.transfer_dir(self.root, self.direction, self.api_url, self.file_id)

    def lock(self) -> state.TransferLock:
        return state.TransferLock(state.ensure_dir(self.dir), f"file {self.file_id!r}")

    def client(self):  # pragma: no cover - interface
        raise NotImplementedError

    def run_locked(self, work: Callable) -> None:
        """work(client) under the transfer's lock, unless another run finished it meanwhile."""
        with self.lock():
            if self.complete():
                return
            client = self.client()
            try:
                work(client)
            finally:
                client.close()

    def report(self, done: int, total: int, phase: str) -> None:
        if self.progress is not None:
            self.progress(done, total, phase)

    def record_run(self, sync: bool = True, **facts) -> None:
        """Facts about this run (bytes moved, resumed, seconds) for the caller's result."""
        facts.setdefault("finished", time.time())
        state.write_json(self.dir / RUN_FILE, facts, sync=sync)

    failure: Optional[BaseException] = None  # what run() raised in this process, if anything

    def on_failure(self, exception: BaseException) -> str:
        self.failure = exception
        details = error_to_dict(exception)
        try:
            state.write_json(state.ensure_dir(self.dir) / FAILURE_FILE, details)
        except Exception:  # the original error matters more
            pass
        return details["message"]


class Marker(luigi.LocalTarget):
    """A small JSON fact in the state dir; complete() never touches the network."""

    def read(self) -> Optional[dict]:
        return state.read_json(Path(self.path))

    def write(self, data: dict, sync: bool = True) -> None:
        state.write_json(state.ensure_dir(Path(self.path).parent) / Path(self.path).name, data,
                         sync=sync)


def stopwatch() -> Callable[[], float]:
    start = time.monotonic()
    return lambda: time.monotonic() - start


def failure_of(task: GhgaTask) -> Optional[GhgaError]:
    """The typed error a ghga task (or one it required) failed with in the last run, if any.

    For your own luigi pipelines: luigi.build() reports failure, this says why and gives the
    exit code (error.exit_code)."""
    details = state.read_json(task.dir / FAILURE_FILE)
    return error_from_dict(details) if details else None
