"""A live `ghga-cli serve` for tests: start, drive through the admin API, restart, stop.

    stack = start_stack(tmp_path / "server", "--retry-after", "1")
    stack.register("F1", 1234)
    ... requests against stack.upload_api / stack.drs_api ...
    stack.stop()

With `s3_endpoint` the server uses that S3 store (e.g. Ceph RGW) instead of starting
an embedded SeaweedFS.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import requests

from ghga_tasks.server.launcher import ServerProcess, s3_args

TIMEOUT = 30  # every HTTP request of this module


class Stack(ServerProcess):
    """A started server (see ServerProcess: start, stop, kill, log_tail) and its admin API."""

    def __init__(self, data_dir: Path, args: List[str], timeout: float):
        self.session = requests.Session()
        super().__init__(data_dir, args, timeout=timeout)
        self._initial: Dict[str, Any] = self.config()

    @property
    def upload_api(self) -> str:
        return self.urls["upload_api"]

    @property
    def drs_api(self) -> str:
        return self.urls["drs_api"]

    @property
    def admin_api(self) -> str:
        return self.urls["admin_api"]

    @property
    def s3_endpoint(self) -> str:
        return self.urls["s3_endpoint"]

    @property
    def url(self) -> str:
        return self.upload_api[: -len("/upload")]

    def restart(self) -> None:
        self.stop()
        self.start()

    # admin API

    def _admin(self, method: str, path: str, **kwargs) -> requests.Response:
        r = self.session.request(method, self.admin_api + path, timeout=TIMEOUT, **kwargs)
        r.raise_for_status()
        return r

    def register(
        self, file_id: str, size: int, sha256: Optional[str] = None, file_name: Optional[str] = None
    ) -> dict:
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


def start_stack(
    data_dir,
    *extra_args: str,
    s3_endpoint: Optional[str] = None,
    access_key: Optional[str] = None,
    secret_key: Optional[str] = None,
    timeout: float = 60,
) -> Stack:
    """Start `python -m ghga_tasks serve` on a free port; returns when it is ready."""
    args = list(extra_args)
    if s3_endpoint:
        args += s3_args(s3_endpoint, access_key or "", secret_key or "")
    return Stack(Path(data_dir), args, timeout)


def env_backend() -> Dict[str, Optional[str]]:
    """S3 backend for tests from GHGA_TEST_S3_ENDPOINT/_ACCESS_KEY/_SECRET_KEY (else embedded)."""
    return {
        "s3_endpoint": os.environ.get("GHGA_TEST_S3_ENDPOINT") or None,
        "access_key": os.environ.get("GHGA_TEST_S3_ACCESS_KEY"),
        "secret_key": os.environ.get("GHGA_TEST_S3_SECRET_KEY"),
    }
