"""Build and run a transfer's luigi DAG and turn luigi's outcome into a result or a typed error.

luigi.build()'s boolean is True even when tasks failed, so we ask for the detailed summary.
Tasks run in this process (one worker, no multiprocessing): each keeps its outcome and its
failure in memory, where the runner and the entry points read them.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Callable, Iterator, Optional

import luigi
import luigi.configuration
import luigi.task
from luigi.execution_summary import LuigiStatusCode

from .errors import (
    GhgaError,
    LockedError,
    TransientError,
    WaitTimeout,
    error_from_dict,
    error_to_dict,
)
from .settings import Settings
from .transfer_dir import FAILURE

log = logging.getLogger("ghga_tasks")

# worker options the runner relies on, set explicitly so a stray luigi.cfg can't change them
PINNED_WORKER_OPTIONS = {
    "keep_alive": "false",
    "retry_external_tasks": "false",
    "check_unfulfilled_deps": "true",
    "force_multiprocessing": "false",
    "timeout": "0",
    "no_install_shutdown_handler": "true",  # a SIGUSR1 handler is process-wide
}


PINNED = [("worker", option, value) for option, value in PINNED_WORKER_OPTIONS.items()] + [
    ("core", "no_configure_logging", "true")
]


@contextlib.contextmanager
def luigi_for_one_build(verbose: bool = False) -> Iterator[None]:
    """luigi's options pinned and its loggers quiet (unless verbose) for one build, then
    as they were: an embedding program's own luigi setup is left alone."""
    config = luigi.configuration.get_config()
    saved_options = [
        (
            section,
            option,
            config.has_section(section),
            config.get(section, option, None)
            if config.has_section(section) and config.has_option(section, option)
            else None,
        )
        for section, option, _ in PINNED
    ]
    loggers = [logging.getLogger(name) for name in ("luigi", "luigi-interface")]
    saved_loggers = [(logger, logger.propagate, list(logger.handlers)) for logger in loggers]
    for section, option, value in PINNED:
        if not config.has_section(section):
            config.add_section(section)
        config.set(section, option, value)
    for logger in loggers:
        logger.propagate = verbose
        logger.addHandler(logging.NullHandler())
    try:
        yield
    finally:
        for section, option, had_section, value in saved_options:
            if value is not None:
                config.set(section, option, value)
            elif config.has_section(section):
                config.remove_option(section, option)
                if not had_section and not config.options(section):
                    config.remove_section(section)
        for logger, propagate, handlers in saved_loggers:
            logger.propagate = propagate
            logger.handlers[:] = handlers


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
            return (
                failure
                if isinstance(failure, GhgaError)
                else error_from_dict(error_to_dict(failure))
            )
    return None


def run_dag(
    task: luigi.Task, settings: Settings, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Run the DAG up to `task`; re-run it after transient failures (settings.task_retries).

    Tasks run in this process: each keeps its outcome and its failure in memory, and the
    caller reads them from the DAG's tasks (dag())."""
    task.tdir.ensure()  # an unusable state dir fails here, clearly (73)
    for current in dag(task):
        current.outcome = None
    for attempt in range(settings.task_retries + 1):
        for current in dag(task):
            current.failure = None
            current.tdir.remove(FAILURE)
        with luigi_for_one_build(logging.getLogger("ghga_tasks").isEnabledFor(logging.DEBUG)):
            result = luigi.build(
                [task], local_scheduler=True, workers=1, detailed_summary=True, no_lock=True
            )
        if result.status in (LuigiStatusCode.SUCCESS, LuigiStatusCode.SUCCESS_WITH_RETRY):
            if not task.complete():
                raise GhgaError(f"luigi reported success but {task} is not complete")
            return
        error = failure_in(task)
        if error is None:
            raise GhgaError(
                f"the transfer did not finish (luigi: {result.status.name}); "
                f"run with --verbose for details"
            )
        # not retried: another process holds the file; the user's deadline has passed
        retry = (
            isinstance(error, TransientError)
            and not isinstance(error, (LockedError, WaitTimeout))
            and attempt < settings.task_retries
        )
        if not retry:
            raise error
        log.info(
            "%s; running the transfer again in %.0f s", error.message, settings.task_retry_delay
        )
        sleep(settings.task_retry_delay)
