"""A live `ghga-cli serve` for tests: start, drive through the admin API, restart, stop.

    stack = start_stack(tmp_path / "server", "--retry-after", "1")
    stack.register("F1", 1234)
    ... requests against stack.upload_api / stack.drs_api ...
    stack.stop()

With `s3_endpoint` the server uses that S3 store (e.g. Ceph RGW) instead of starting
an embedded SeaweedFS.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import requests

TIMEOUT = 30  # every HTTP request of this module


class Stack:
    url: str
    upload_api: str
    drs_api: str
    admin_api: str
    s3_endpoint: str
    data_dir: Path
    proc: subprocess.Popen

    def __init__(self, data_dir: Path, args: List[str], timeout: float):
        self.data_dir = Path(data_dir)
        self.args = list(args)
        self.timeout = timeout
        self.log_path = self.data_dir / "server.log"
        self.session = requests.Session()
        self._initial: Dict[str, Any] = {}
        self._start()
        self._initial = self.config()

    # lifecycle

    def _start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "ghga_tasks", "serve", "--port", "0",
               "--data-dir", str(self.data_dir), *self.args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                                         stdin=subprocess.DEVNULL)
        line = _read_line(self.proc, self.timeout)
        try:
            urls = json.loads(line or "")
        except ValueError:
            self._kill()
            raise RuntimeError(f"server did not start within {self.timeout} s "
                               f"(stdout {line!r}); log {self.log_path}:\n{self.log_tail()}")
        self.upload_api = urls["upload_api"]
        self.drs_api = urls["drs_api"]
        self.admin_api = urls["admin_api"]
        self.s3_endpoint = urls["s3_endpoint"]
        self.url = self.upload_api[: -len("/upload")]

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, wait (bounded), then SIGKILL this server's own PID."""
        proc = self.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill()
        if proc.stdout:
            proc.stdout.close()

    def kill(self) -> None:
        """SIGKILL (a crash); the server's SeaweedFS follows it (parent-death signal)."""
        self._kill()
        if self.proc.stdout:
            self.proc.stdout.close()

    def _kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def start(self) -> None:
        """Start again after stop() or kill(), same data dir and arguments."""
        self._start()

    def restart(self) -> None:
        self.stop()
        self._start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # admin API

    def _admin(self, method: str, path: str, **kwargs) -> requests.Response:
        r = self.session.request(method, self.admin_api + path, timeout=TIMEOUT, **kwargs)
        r.raise_for_status()
        return r

    def register(self, file_id: str, size: int, sha256: Optional[str] = None,
                 file_name: Optional[str] = None) -> dict:
        body: Dict[str, Any] = {"file_id": file_id, "size": size}
        if sha256 is not None:
            body["sha256"] = sha256
        if file_name is not None:
            body["file_name"] = file_name
        return self._admin("POST", "/files", json=body).json()

    def delete(self, file_id: str) -> None:
        self._admin("DELETE", f"/files/{file_id}")

    def file_info(self, file_id: str) -> dict:
        return self._admin("GET", f"/files/{file_id}").json()

    def config(self) -> dict:
        return self._admin("GET", "/config").json()

    def configure(self, **knobs) -> dict:
        return self._admin("PATCH", "/config", json=knobs).json()

    def reset(self) -> None:
        """All knobs back to the values the stack was started with."""
        self.configure(**self._initial)

    def s3_info(self) -> dict:
        return self._admin("GET", "/s3").json()

    def wait_accepted(self, upload_id: str, timeout: float = 60) -> dict:
        """Poll the attempt until it leaves pending/uploaded; returns it (any final status)."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.session.get(f"{self.upload_api}/uploads/{upload_id}", timeout=TIMEOUT)
            if r.status_code == 200 and r.json()["status"] not in ("pending", "uploaded"):
                return r.json()
            if r.status_code not in (200, 429, 503):
                r.raise_for_status()
            if time.monotonic() > deadline:
                raise TimeoutError(f"upload {upload_id} still {r.text} after {timeout} s")
            time.sleep(0.1)


def _read_line(proc: subprocess.Popen, timeout: float) -> Optional[str]:
    """The first stdout line of proc, or None if it exits or stays silent too long."""
    box: List[bytes] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not box:
        return None
    return box[0].decode(errors="replace").strip() or None


def start_stack(data_dir, *extra_args: str, s3_endpoint: Optional[str] = None,
                access_key: Optional[str] = None, secret_key: Optional[str] = None,
                timeout: float = 60) -> Stack:
    """Start `python -m ghga_tasks serve` on a free port; returns when it is ready."""
    args: List[str] = []
    if s3_endpoint:
        args += ["--s3-endpoint", s3_endpoint, "--s3-access-key", access_key or "",
                 "--s3-secret-key", secret_key or ""]
    return Stack(Path(data_dir), list(extra_args) + args, timeout)


def env_backend() -> Dict[str, Optional[str]]:
    """S3 backend for tests from GHGA_TEST_S3_ENDPOINT/_ACCESS_KEY/_SECRET_KEY (else embedded)."""
    return {"s3_endpoint": os.environ.get("GHGA_TEST_S3_ENDPOINT") or None,
            "access_key": os.environ.get("GHGA_TEST_S3_ACCESS_KEY"),
            "secret_key": os.environ.get("GHGA_TEST_S3_SECRET_KEY")}
