"""Build and run a transfer's luigi DAG and turn luigi's outcome into a result or a typed error.

luigi.build()'s boolean is True even when tasks failed, so we ask for the detailed summary
and read the failure a task left in its state dir (tasks may run in a child process).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import luigi
import luigi.configuration
import luigi.task
from luigi.execution_summary import LuigiStatusCode

from . import state
from .errors import (GhgaError, LockedError, TransientError, WaitTimeout, error_from_dict,
                     error_to_dict)
from .settings import Settings
from .tasks.base import FAILURE_FILE

log = logging.getLogger("ghga_tasks")

# worker options the runner relies on, set explicitly so a stray luigi.cfg can't change them
PINNED_WORKER_OPTIONS = {
    "keep_alive": "false",
    "retry_external_tasks": "false",
    "check_unfulfilled_deps": "true",
    "force_multiprocessing": "false",
    "timeout": "0",
}


def quiet_luigi(verbose: bool = False) -> None:
    """luigi logs every scheduling step; keep it off stderr unless asked for."""
    for name in ("luigi", "luigi-interface"):
        logger = logging.getLogger(name)
        logger.propagate = verbose
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())


def pin_luigi_config() -> None:
    config = luigi.configuration.get_config()
    for section in ("worker", "core"):
        if not config.has_section(section):
            config.add_section(section)
    for option, value in PINNED_WORKER_OPTIONS.items():
        config.set("worker", option, value)
    config.set("core", "no_configure_logging", "true")


def dag(task: luigi.Task) -> Iterator[luigi.Task]:
    """The task and everything it requires, each once."""
    seen, todo = set(), [task]
    while todo:
        current = todo.pop()
        if id(current) not in seen:
            seen.add(id(current))
            yield current
            todo.extend(luigi.task.flatten(current.requires()))


def failure_in(task: luigi.Task) -> Optional[GhgaError]:
    """The typed error a task of this DAG raised in this process, if any (tasks run
    in-process: the failure never has to pass through a file that may not be writable)."""
    for current in dag(task):
        failure = getattr(current, "failure", None)
        if failure is not None:
            return failure if isinstance(failure, GhgaError) else error_from_dict(
                error_to_dict(failure))
    return None


def run_dag(task: luigi.Task, transfer_dir: Path, settings: Settings,
            sleep: Callable[[float], None] = time.sleep) -> None:
    """Run the DAG up to `task`; re-run it after transient failures (settings.task_retries)."""
    quiet_luigi(verbose=logging.getLogger("ghga_tasks").isEnabledFor(logging.DEBUG))
    pin_luigi_config()
    failure_file = transfer_dir / FAILURE_FILE
    for attempt in range(settings.task_retries + 1):
        state.remove(failure_file)
        for current in dag(task):
            current.failure = None
        result = luigi.build([task], local_scheduler=True, workers=1, detailed_summary=True,
                             no_lock=True)
        if result.status in (LuigiStatusCode.SUCCESS, LuigiStatusCode.SUCCESS_WITH_RETRY):
            if not task.complete():
                raise GhgaError(f"luigi reported success but {task} is not complete")
            return
        error = failure_in(task)
        if error is None:  # run in another process: it left its failure in the state dir
            details = state.read_json(failure_file)
            if details is None:
                raise GhgaError(f"the transfer did not finish (luigi: {result.status.name}); "
                                f"run with --verbose for details")
            error = error_from_dict(details)
        # not retried: another process holds the file; the user's deadline has passed
        retry = (isinstance(error, TransientError)
                 and not isinstance(error, (LockedError, WaitTimeout))
                 and attempt < settings.task_retries)
        if not retry:
            raise error
        log.info("%s; running the transfer again in %.0f s", error.message,
                    settings.task_retry_delay)
        sleep(settings.task_retry_delay)
