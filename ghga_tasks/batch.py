"""Many files in one luigi build: upload_batch() and download_batch().

Every file's final task (ConfirmUpload / FetchFile) goes into one luigi.build with luigi's own
`workers`; with more than one worker luigi runs each task in a child process, so nothing a
task keeps in memory comes back. Each file's result is therefore read from disk after the
build: its targets, failure.json (GhgaTask.on_failure) and, for the bytes moved by this run, a
small run file that a luigi PROCESSING_TIME handler writes next to the targets in the child
(tagged with this batch's run id, so an earlier run's or another process's file never counts).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import uuid
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import luigi

from .api import (
    Result,
    _settings,
    download_result,
    download_task,
    upload_result,
    upload_task,
)
from .clients import DrsClient
from .download_steps import check_output_dir
from .errors import (
    ExitCode,
    GhgaError,
    LockedError,
    NotStagedYet,
    TransientError,
    UsageError,
    WaitTimeout,
    error_from_dict,
)
from .manifest import check_entries, read_manifest
from .progress import Progress, WaitNotice
from .runner import luigi_for_one_build
from .settings import Settings
from .tasks.base import RUN_FILE, GhgaTask
from .tasks.download import FetchFile
from .tasks.upload import ConfirmUpload
from .transfer_dir import DONE, FAILURE
from .upload_steps import source_facts

log = logging.getLogger("ghga_tasks")

# Most severe first: the batch exits with the first of these that any file has. Problems
# that no re-run can fix and that likely hit every file (a bug, bad flags, configuration,
# permissions, the output) outrank one file's problem (input, integrity, refusal), which
# outranks what a re-run may fix (transient). An interrupt ends the batch as 130 whatever
# else happened, as shells expect.
SEVERITY = (
    ExitCode.INTERRUPTED,
    ExitCode.INTERNAL,
    ExitCode.USAGE,
    ExitCode.CONFIG,
    ExitCode.NOT_ALLOWED,
    ExitCode.CANNOT_WRITE,
    ExitCode.NO_INPUT,
    ExitCode.INTEGRITY,
    ExitCode.REFUSED,
    ExitCode.TRANSIENT,
    ExitCode.OK,
)

# luigi priorities of a download's tasks: staged files are fetched before a worker is given
# to waiting for a file still being staged
STAGED, STAGING = 10, 0


def most_severe(codes: Iterable[int]) -> ExitCode:
    """The most severe exit code of `codes` by SEVERITY (0 for none)."""
    rank = {code: i for i, code in enumerate(SEVERITY)}
    worst = ExitCode.OK
    for code in codes:
        code = ExitCode(int(code)) if int(code) in rank else ExitCode.INTERNAL
        if rank[code] < rank[worst]:
            worst = code
    return worst


def connections_per_file(parallel: int, workers: int, connections: int) -> Tuple[int, int]:
    """(workers, parallel per file) so that workers × parallel ≤ connections."""
    workers = max(1, min(workers, connections))
    return workers, max(1, min(parallel, connections // workers))


@dataclasses.dataclass
class FileOutcome:
    """One file of a batch: its Result, or the typed error it failed with."""

    file_id: str
    result: Optional[Result] = None
    error: Optional[GhgaError] = None

    @property
    def exit_code(self) -> int:
        return int(self.error.exit_code) if self.error else 0

    def as_dict(self) -> dict:
        if self.result is not None:
            return self.result.as_dict()
        return {"file_id": self.file_id, "error": str(self.error), "exit_code": self.exit_code}


@dataclasses.dataclass
class BatchResult:
    direction: str
    files: List[FileOutcome]
    seconds: float

    @property
    def exit_code(self) -> int:
        return int(most_severe(f.exit_code for f in self.files))

    @property
    def summary(self) -> dict:
        done = [f.result for f in self.files if f.result is not None]
        return {
            "summary": True,
            "direction": self.direction,
            "files": len(self.files),
            "done": len(done),
            "failed": len(self.files) - len(done),
            "size": sum(r.size for r in done),
            "bytes_transferred": sum(r.bytes_transferred for r in done),
            "bytes_resumed": sum(r.bytes_resumed for r in done),
            "bytes_resent": sum(r.bytes_resent for r in done),
            "parts": sum(r.parts for r in done),
            "url_refreshes": sum(r.url_refreshes for r in done),
            "seconds": round(self.seconds, 3),
            "exit_code": self.exit_code,
        }


# ---- the build ------------------------------------------------------------------------


def _run_file(task: GhgaTask, family: str, run_id: str) -> Optional[dict]:
    data = task.tdir.read(RUN_FILE.format(family=family))
    return data if data and data.get("run") == run_id else None


def _failure(task: GhgaTask, since: float) -> Optional[GhgaError]:
    """The failure a task of this file's DAG wrote in this batch (failure.json newer than
    its start), typed."""
    path = task.tdir.file(FAILURE)
    try:
        if path.stat().st_mtime < since:
            return None
    except OSError:
        return None
    details = task.tdir.read(FAILURE)
    return error_from_dict(details) if details else None


def _build(tasks: List[GhgaTask], workers: int, scheduler_url: Optional[str]) -> None:
    kwargs: Dict[str, Any] = {"local_scheduler": True}
    if scheduler_url:
        kwargs = {"local_scheduler": False, "scheduler_url": scheduler_url}
    with luigi_for_one_build(logging.getLogger("ghga_tasks").isEnabledFor(logging.DEBUG)):
        luigi.build(tasks, workers=workers, detailed_summary=True, no_lock=True, **kwargs)


class _Watch:
    """Progress from the parent: files finished (complete or failed) and their bytes, asked
    of the disk twice a second while luigi's workers run."""

    def __init__(self, tasks, sizes: Callable[[GhgaTask], int], since: float, progress):
        self.tasks, self.sizes, self.since, self.progress = tasks, sizes, since, progress
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        if self.progress is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()
            self._tick()

    def _tick(self) -> None:
        done = moved = total = 0
        for task in self.tasks:
            size = self.sizes(task)
            total += size
            try:
                finished = task.complete()
            except Exception:  # noqa: BLE001 - progress only
                finished = False
            if finished:
                moved += size
            failed = None if finished else _failure(task, self.since)
            if finished or (failed is not None and not isinstance(failed, NotStagedYet)):
                done += 1
        self.progress(moved, max(total, moved), f"{done}/{len(self.tasks)} files")

    def _loop(self) -> None:
        while not self.stop.wait(0.5):
            self._tick()


def _run_batch(
    direction: str,
    tasks: List[GhgaTask],
    cfg: Settings,
    result_of: Callable[[GhgaTask, Dict[str, Any], str], Result],
    sizes: Callable[[GhgaTask], int],
    progress: Optional[Progress],
    workers: int,
    sleep: Callable[[float], None] = time.sleep,
) -> BatchResult:
    start, since = time.monotonic(), time.time() - 1.0  # mtime granularity
    run_id = uuid.uuid4().hex
    before = {id(task): task.complete() for task in tasks}
    for task in tasks:
        task.tdir.ensure()  # an unusable state dir fails here, clearly (73)
    errors: Dict[int, GhgaError] = {}
    todo = [task for task in tasks if not before[id(task)]]
    for task in tasks:
        task.run_id = run_id  # insignificant: the same task, now leaving its run file
    staging_deadline = time.monotonic() + cfg.max_wait
    asked_after_deadline = False
    retries_left = cfg.task_retries
    notice = WaitNotice(log)
    try:
        with _Watch(tasks, sizes, since, progress):
            while todo:
                errors.update(_build_until_settled(todo, workers, cfg, since, sleep))
                staging = [t for t in todo if isinstance(errors.get(id(t)), NotStagedYet)]
                retry = [
                    task
                    for task in todo
                    if isinstance(errors.get(id(task)), TransientError)
                    and not isinstance(errors[id(task)], (LockedError, WaitTimeout))
                ]
                if retries_left <= 0:
                    retry = []
                left = staging_deadline - time.monotonic()
                if staging and left <= 0 and not asked_after_deadline:
                    # the deadline passed while other files were fetched: ask once more
                    asked_after_deadline, left = True, 0.0
                elif staging and left <= 0:
                    for task in staging:
                        errors[id(task)] = WaitTimeout(
                            f"object {task.file_id!r} was still being staged after "
                            f"{cfg.max_wait:g} s (--max-wait); run again to keep waiting"
                        )
                    staging = []
                if retry:
                    retries_left -= 1
                    log.info(
                        "%d file(s) failed for now; running them again in %.0f s",
                        len(retry),
                        cfg.task_retry_delay,
                    )
                    sleep(cfg.task_retry_delay)
                elif staging:
                    wait = max(0.0, min(min(errors[id(t)].retry_after for t in staging), left))
                    notice(
                        f"{len(staging)} file(s) still being staged by DRS; asking again in "
                        f"{wait:.0f} s (for at most --max-wait {cfg.max_wait:g} s in all)"
                    )
                    sleep(wait)
                else:
                    break
                since = time.time() - 1.0
                todo = retry + staging
                for task in todo:
                    errors.pop(id(task))
    finally:
        for task in tasks:
            task.run_id = ""
    outcomes = []
    for task in tasks:
        if id(task) in errors:
            outcomes.append(FileOutcome(task.file_id, error=errors[id(task)]))
            continue
        info = {"seconds": time.monotonic() - start, "ran": not before[id(task)]}
        outcomes.append(FileOutcome(task.file_id, result=result_of(task, info, run_id)))
    return BatchResult(direction, outcomes, time.monotonic() - start)


def _build_until_settled(
    tasks: List[GhgaTask], workers: int, cfg: Settings, since: float, sleep
) -> Dict[int, GhgaError]:
    """Build until every task is complete or failed. With a central scheduler another
    process may be running some of them: luigi's worker then ends without them, and the
    build is repeated (a no-op for finished files) until they are done or failed."""
    deadline = time.monotonic() + cfg.max_wait
    pending = list(tasks)
    errors: Dict[int, GhgaError] = {}
    while True:
        _build(pending, workers, cfg.scheduler_url)
        waiting = []
        for task in pending:
            if task.complete():
                continue
            error = _failure(task, since)
            if error is not None:
                errors[id(task)] = error
            else:
                waiting.append(task)
        if not waiting:
            return errors
        if not cfg.scheduler_url or time.monotonic() > deadline:
            for task in waiting:
                errors[id(task)] = GhgaError(
                    f"the transfer of {task.file_id!r} did not finish (luigi did not run it); "
                    "run with --verbose for details"
                )
            return errors
        sleep(1.0)
        pending = waiting


# ---- the two entry points -------------------------------------------------------------


def _batch_settings(cfg: Settings, workers: Optional[int]) -> Tuple[Settings, int]:
    workers = cfg.workers if workers is None else workers
    if workers < 1:
        raise UsageError(f"workers must be at least 1, not {workers}")
    workers, parallel = connections_per_file(cfg.parallel, workers, cfg.connections)
    return dataclasses.replace(cfg, parallel=parallel), workers


Manifest = Union[str, os.PathLike, Sequence[Tuple[str, str]]]


def upload_batch(
    api_url: str,
    manifest: Manifest,
    *,
    wait: bool = False,
    workers: Optional[int] = None,
    settings: Optional[Settings] = None,
    progress: Optional[Progress] = None,
    **overrides: Any,
) -> BatchResult:
    """Upload every (file_id, file_path) of `manifest` (a TSV path, or the pairs) in one
    luigi build with `workers` files at once. A bad manifest raises (UsageError, InputError)
    before any request; one file's failure is in its FileOutcome, not raised."""
    cfg, workers = _batch_settings(_settings(settings, overrides), workers)
    if isinstance(manifest, (str, os.PathLike)):
        entries = read_manifest(os.fspath(manifest), need_path=True)
    else:
        entries = [(fid, os.path.abspath(p)) for fid, p in manifest]
    check_entries(entries)
    tasks = [
        upload_task(api_url, file_id, file_path, cfg, wait=wait) for file_id, file_path in entries
    ]
    size_of = {task.file_id: source_facts(task.file_path)["size"] for task in tasks}

    def result_of(task: ConfirmUpload, info: dict, run_id: str) -> Result:
        size = size_of[task.file_id]
        parts = _run_file(task, "ghga.TransferParts", run_id) if info["ran"] else None
        ran = [_run_file(task, f, run_id) for f in ("ghga.RequestURL", "ghga.ConfirmUpload")]
        seconds = sum(r["seconds"] for r in [parts, *ran] if r) if info["ran"] else 0.0
        return upload_result(task, size, parts["outcome"] if parts else None, seconds)

    return _run_batch(
        "upload", tasks, cfg, result_of, lambda t: size_of[t.file_id], progress, workers
    )


def ask_for_staging(api_url: str, tasks: Sequence[FetchFile], cfg: Settings) -> None:
    """Ask DRS once for every file still to fetch, so that the server stages them all at
    once, and give the staged ones the higher luigi priority: they are fetched first. A
    file still being staged gives its worker back (NotStagedYet) and is asked again when
    the build round ends."""
    pending = [task for task in tasks if not task.complete()]
    if not pending:
        return
    log.info("asking DRS for %d file(s) before fetching", len(pending))
    client = DrsClient(api_url, cfg)
    try:
        for task in pending:
            try:
                obj, _ = client.get_object(task.file_id)
            except TransientError:
                break  # the API is unreachable or busy: the tasks meet it and report it
            except GhgaError:
                continue  # this file's own tasks meet it again and report it
            task.priority = STAGED if obj is not None else STAGING
    finally:
        client.close()


def download_batch(
    api_url: str,
    file_ids: Union[str, os.PathLike, Sequence[str]],
    output_dir: str,
    *,
    overwrite: bool = False,
    workers: Optional[int] = None,
    settings: Optional[Settings] = None,
    progress: Optional[Progress] = None,
    **overrides: Any,
) -> BatchResult:
    """Download every DRS object of `file_ids` (a list, or a TSV manifest path with a
    `file_id` column) into `output_dir`, `workers` files at once: the staged files first,
    the others once DRS has staged them (a file being staged never holds a worker). A bad
    list raises before any request; one file's failure is in its FileOutcome, not raised."""
    cfg, workers = _batch_settings(_settings(settings, overrides), workers)
    if isinstance(file_ids, (str, os.PathLike)):
        entries = read_manifest(os.fspath(file_ids), need_path=False)
    else:
        entries = [(fid, None) for fid in file_ids]
    check_entries(entries)
    output_dir = os.path.abspath(output_dir)
    check_output_dir(output_dir)
    tasks = [
        download_task(api_url, file_id, output_dir, cfg, overwrite=overwrite)
        for file_id, _ in entries
    ]

    def size_of(task: FetchFile) -> int:
        known = task.tdir.read(DONE) or task.requires().output().read() or {}
        return int(known.get("size", 0) or 0)

    def result_of(task: FetchFile, info: dict, run_id: str) -> Result:
        fetched = _run_file(task, "ghga.FetchFile", run_id) if info["ran"] else None
        polled = _run_file(task, "ghga.PollOutbox", run_id) if info["ran"] else None
        seconds = sum(r["seconds"] for r in (fetched, polled) if r)
        return download_result(task, fetched["outcome"] if fetched else None, seconds)

    try:
        ask_for_staging(api_url, tasks, cfg)  # the server stages them all at once
        for task in tasks:
            task.ask_once = True  # insignificant: a file being staged never holds a worker
        return _run_batch("download", tasks, cfg, result_of, size_of, progress, workers)
    finally:
        for task in tasks:  # luigi caches task instances: a later download_by_id gets these
            task.ask_once, task.priority = False, 0
