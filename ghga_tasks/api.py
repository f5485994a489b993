"""The library's entry points: upload_by_id() and download_by_id()."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Optional

from .download_steps import Fetched, check_output_dir
from .partial import check_file_id
from .progress import Progress
from .runner import dag, run_dag
from .settings import Settings, load
from .tasks.download import FetchFile
from .tasks.upload import ConfirmUpload
from .upload_steps import source_facts


@dataclasses.dataclass
class Result:
    """What one transfer did; `--json` prints it as one object."""

    direction: str
    file_id: str
    path: str
    size: int
    sha256: Optional[str]
    bytes_transferred: int
    bytes_resumed: int
    seconds: float
    status: str
    transfer_seconds: float = 0.0  # moving bytes only, without staging/acceptance waits
    upload_id: Optional[str] = None
    bytes_resent: int = 0  # moved this run in attempts that were cut off, so moved again
    parts: int = 0  # parts (upload) or ranges (download) of the file; 0: nothing moved
    url_refreshes: int = 0  # fresh URLs this run asked for after storage refused one

    def as_dict(self) -> dict:
        data = dataclasses.asdict(self)
        if data["upload_id"] is None:
            del data["upload_id"]
        data["seconds"] = round(self.seconds, 3)
        data["transfer_seconds"] = round(self.transfer_seconds, 3)
        return data


def _settings(settings: Optional[Settings], overrides: dict) -> Settings:
    if settings is None:
        return load(**overrides)
    clean = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(settings, **clean) if clean else settings


def upload_task(
    api_url: str,
    file_id: str,
    file_path: str,
    cfg: Settings,
    *,
    wait: bool = False,
    progress: Optional[Progress] = None,
) -> ConfirmUpload:
    """The final task of one file's upload DAG."""
    return ConfirmUpload(
        api_url=api_url,
        file_id=file_id,
        file_path=file_path,
        state_dir=str(cfg.state_root),
        wait=wait,
        settings=cfg,
        progress=progress,
    )


def download_task(
    api_url: str,
    file_id: str,
    output_dir: str,
    cfg: Settings,
    *,
    overwrite: bool = False,
    progress: Optional[Progress] = None,
) -> FetchFile:
    """The final task of one file's download DAG."""
    return FetchFile(
        api_url=api_url,
        file_id=file_id,
        output_dir=output_dir,
        state_dir=str(cfg.state_root),
        overwrite=overwrite,
        settings=cfg,
        progress=progress,
    )


def upload_result(task: ConfirmUpload, size: int, stored: Optional[dict], seconds: float) -> Result:
    """One file's upload result: its final target, and what TransferParts did in this run
    (`stored`, a PartsStored as a dict; None when it had nothing to do)."""
    confirmed = task.output().read() or {}
    moved = stored or {}
    return Result(
        direction="upload",
        file_id=task.file_id,
        path=task.file_path,
        size=size,
        sha256=moved.get("sha256") or confirmed.get("sha256"),
        bytes_transferred=moved.get("bytes_transferred", 0),
        bytes_resumed=moved.get("bytes_resumed", size),
        bytes_resent=moved.get("bytes_resent", 0),
        parts=moved.get("parts", 0),
        url_refreshes=moved.get("url_refreshes", 0),
        seconds=seconds,
        status=confirmed.get("status", "uploaded"),
        transfer_seconds=moved.get("seconds", 0.0),
        upload_id=confirmed.get("upload_id"),
    )


def download_result(task: FetchFile, fetched: Optional[dict], seconds: float) -> Result:
    """One file's download result: its final target (done.json), and what FetchFile did in
    this run (`fetched`, a Fetched as a dict; None when it had nothing to do)."""
    done = task.output().read() or {}
    size = int(done.get("size", 0))
    moved = fetched or {}
    return Result(
        direction="download",
        file_id=task.file_id,
        path=done.get("path", str(Path(task.output_dir) / task.file_id)),
        size=size,
        sha256=done.get("sha256"),
        bytes_transferred=moved.get("bytes_transferred", 0),
        bytes_resumed=moved.get("bytes_resumed", size),
        bytes_resent=moved.get("bytes_resent", 0),
        parts=moved.get("parts", 0),
        url_refreshes=moved.get("url_refreshes", 0),
        seconds=seconds,
        status=moved.get("status", "complete"),
        transfer_seconds=moved.get("seconds", 0.0),
    )


def _outcome(task, family: str):
    """What the DAG's task of this family did in this run (None: it had nothing to do)."""
    return next((t.outcome for t in dag(task) if t.task_family == family), None)


def upload_by_id(
    api_url: str,
    file_id: str,
    file_path: str,
    *,
    wait: bool = False,
    settings: Optional[Settings] = None,
    progress: Optional[Progress] = None,
    **overrides: Any,
) -> Result:
    """Upload `file_path` as the registered file `file_id`; resumable, verified by ETag/MD5.
    With `wait`, return once the server accepted it. `overrides` are Settings fields.

    Raises a GhgaError subclass (each has an exit_code) when it can't."""
    cfg = _settings(settings, overrides)
    file_path = os.path.abspath(file_path)
    size = source_facts(file_path)["size"]
    task = upload_task(api_url, file_id, file_path, cfg, wait=wait, progress=progress)
    start = time.monotonic()
    run_dag(task, cfg)
    stored = _outcome(task, "ghga.TransferParts")
    return upload_result(
        task, size, dataclasses.asdict(stored) if stored else None, time.monotonic() - start
    )


def download_by_id(
    api_url: str,
    file_id: str,
    output_dir: str,
    *,
    overwrite: bool = False,
    settings: Optional[Settings] = None,
    progress: Optional[Progress] = None,
    **overrides: Any,
) -> Result:
    """Download the DRS object `file_id` into `output_dir/file_id`, verified by SHA-256.
    With `overwrite`, replace a file there that holds other bytes. `overrides` are Settings
    fields.

    Raises a GhgaError subclass (each has an exit_code) when it can't."""
    cfg = _settings(settings, overrides)
    check_file_id(file_id)
    output_dir = os.path.abspath(output_dir)
    check_output_dir(output_dir)
    task = download_task(api_url, file_id, output_dir, cfg, overwrite=overwrite, progress=progress)
    start = time.monotonic()
    run_dag(task, cfg)
    fetched: Optional[Fetched] = task.outcome
    return download_result(
        task, dataclasses.asdict(fetched) if fetched else None, time.monotonic() - start
    )
