"""Python side of ``ceph-rgw.sh``: a single-node Ceph RGW for benchmarks and tests.

    info = start_ceph(tmp_dir, min_part_size=5 * 2**20)
    s3 = boto3.client("s3", endpoint_url=info["endpoint"], region_name=info["region"],
                      aws_access_key_id=info["access_key"],
                      aws_secret_access_key=info["secret_key"])
    ...
    gc_ceph(tmp_dir)      # between benchmark rounds: free deleted objects now, not in 2 h
    stop_ceph(tmp_dir)

``start_ceph`` on a directory that already holds a cluster restarts it with its data (or
just returns the endpoint when it runs). The Debian packages are installed when missing
(root only). Everything the cluster writes stays in the directory; logs in ``DIR/log``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Union

__all__ = [
    "SCRIPT",
    "CephError",
    "ceph_installed",
    "compression_stats",
    "gc_ceph",
    "install_ceph",
    "running_ceph",
    "start_ceph",
    "status_ceph",
    "stop_ceph",
]

SCRIPT = Path(__file__).resolve().with_name("ceph-rgw.sh")
_BINARIES = (
    "ceph-mon",
    "ceph-osd",
    "radosgw",
    "radosgw-admin",
    "ceph",
    "ceph-authtool",
    "monmaptool",
)
_NOT_RUNNING = 3  # the script's exit code for "status: not running"

PathLike = Union[str, os.PathLike]  # a runtime alias: no `X | Y` before Python 3.10


class CephError(RuntimeError):
    """The script failed; ``stderr`` holds its message and the tail of the relevant log."""

    def __init__(self, message: str, returncode: int | None = None, stderr: str = ""):
        super().__init__(f"{message}\n{stderr}".rstrip())
        self.returncode = returncode
        self.stderr = stderr


def _run(args: list, timeout: float) -> subprocess.CompletedProcess:
    cmd = ["bash", str(SCRIPT), *map(str, args)]
    try:
        return subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise CephError(
            f"{' '.join(cmd[1:3])}: no answer within {timeout:.0f} s", None, err
        ) from None


def _parse(proc: subprocess.CompletedProcess, what: str) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or len(lines) != 1:
        raise CephError(
            f"ceph-rgw.sh {what} failed (exit {proc.returncode})", proc.returncode, proc.stderr
        )
    return json.loads(lines[0])


def ceph_installed() -> bool:
    return all(shutil.which(b) for b in _BINARIES)


def install_ceph(timeout: float = 900) -> None:
    """Install ceph-mon, ceph-osd and radosgw with apt-get when missing (needs root)."""
    if ceph_installed():
        return
    proc = _run(["install"], timeout)
    if proc.returncode != 0:
        raise CephError("installing the Ceph packages failed", proc.returncode, proc.stderr)


def start_ceph(
    dir: PathLike,
    port: int | None = None,
    min_part_size: int | None = None,
    timeout: float = 120,
    block_size: int | str | None = None,
    compression: str | None = None,
) -> dict:
    """Start (bootstrap or restart) the cluster in ``dir``; return the endpoint description.

    The dict: ``endpoint``, ``access_key``, ``secret_key``, ``region``, ``dir``, ``pids``.
    ``timeout`` bounds the start itself; a missing installation is done first, apart.
    On failure nothing the call started keeps running, and ``CephError`` is raised.
    """
    install_ceph()
    args = ["start", os.fspath(dir), "--timeout", int(timeout)]
    if port is not None:
        args += ["--port", int(port)]
    if min_part_size is not None:
        args += ["--min-part-size", int(min_part_size)]
    if block_size is not None:
        args += ["--block-size", block_size]
    if compression is not None:
        args += ["--compression", compression]
    try:
        proc = _run(args, timeout + 60)  # the script bounds itself; this is a backstop
        return _parse(proc, "start")
    except BaseException:
        # also on KeyboardInterrupt (a harness's SIGTERM): subprocess.run then kills the
        # script, whose daemons (started apart) would outlive it
        _stop_quietly(dir)
        raise


def _stop_quietly(dir: PathLike) -> None:
    """stop_ceph after a failed start: its own failure must not hide the start's."""
    try:
        stop_ceph(dir)
    except (CephError, OSError):
        pass


def status_ceph(dir: PathLike, timeout: float = 30) -> dict | None:
    """The endpoint description if the cluster in ``dir`` runs, else None."""
    proc = _run(["status", os.fspath(dir)], timeout)
    if proc.returncode == _NOT_RUNNING:
        return None
    return _parse(proc, "status")


def stop_ceph(dir: PathLike, timeout: float = 120) -> None:
    """SIGTERM the daemons started from ``dir`` (bounded wait, then SIGKILL)."""
    proc = _run(["stop", os.fspath(dir)], timeout)
    if proc.returncode != 0:
        raise CephError("ceph-rgw.sh stop failed", proc.returncode, proc.stderr)


def gc_ceph(dir: PathLike, timeout: float = 3600) -> None:
    """``radosgw-admin gc process --include-all``: free the space of deleted objects now."""
    proc = _run(["gc", os.fspath(dir)], timeout)
    if proc.returncode != 0:
        raise CephError("ceph-rgw.sh gc failed", proc.returncode, proc.stderr)


def compression_stats(dir: PathLike, timeout: float = 30) -> dict | None:
    """What BlueStore compression did so far, from the OSD's perf counters: bytes
    ``original`` (before), ``allocated`` (the disk blocks they take) and ``compressed``
    (the compressed data in them); None when the OSD does not answer."""
    sock = Path(dir) / "run" / "ceph-osd.0.asok"
    try:
        proc = subprocess.run(
            ["ceph", "--admin-daemon", str(sock), "perf", "dump", "bluestore"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        counters = json.loads(proc.stdout)["bluestore"]
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError):
        return None
    return {
        name: int(counters.get(f"bluestore_compressed{suffix}", 0))
        for name, suffix in (
            ("original", "_original"),
            ("allocated", "_allocated"),
            ("compressed", ""),
        )
    }


@contextmanager
def running_ceph(dir: PathLike, **kwargs) -> Iterator[dict]:
    """``with running_ceph(d) as info: ...`` starts the cluster and always stops it."""
    info = start_ceph(dir, **kwargs)
    try:
        yield info
    finally:
        stop_ceph(dir)
