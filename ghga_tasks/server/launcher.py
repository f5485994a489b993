"""`ghga-cli serve` in a subprocess: started, ready once its JSON line arrives, stopped by its PID.

The demo, the tests and the benchmarks start the reference server through `ServerProcess`:

    server = ServerProcess(data_dir, ["--retry-after", "1"])
    server.urls["upload_api"], server.urls["drs_api"], server.urls["admin_api"]
    server.stop()

Standard library only: it needs no server extra in the process that starts the server.
"""

from __future__ import annotations

import ctypes
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

READY_KEYS = ("upload_api", "drs_api", "admin_api", "s3_endpoint")


class ServerNotReady(RuntimeError):
    """The server exited, or stayed silent past the deadline, instead of announcing itself."""

    def __init__(self, message: str, log_path: Path):
        super().__init__(message)
        self.log_path = log_path


def s3_args(
    endpoint: str, access_key: str, secret_key: str, region: Optional[str] = None
) -> List[str]:
    """`serve` flags for an S3 store (e.g. Ceph RGW) instead of the embedded SeaweedFS."""
    args = ["--s3-endpoint", endpoint, "--s3-access-key", access_key, "--s3-secret-key", secret_key]
    return args + ["--s3-region", region] if region else args


def death_signal() -> Optional[Callable[[], None]]:
    """A pre-exec hook: the child gets SIGTERM when its parent dies, even by SIGKILL (Linux)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved in the parent
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return hook


class ServerProcess:
    """One `ghga-cli serve`; its stderr goes to `log_path` (default DATA_DIR/server.log).

    `command` runs the CLI (default: this Python, `-m ghga_tasks`). With `detach`, the
    server runs in a session of its own and gets SIGTERM when this process dies.
    """

    def __init__(
        self,
        data_dir: Path,
        args: Sequence[str] = (),
        *,
        log_path: Optional[Path] = None,
        command: Optional[Sequence[str]] = None,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[Path] = None,
        detach: bool = False,
        timeout: float = 60,
    ):
        self.data_dir = Path(data_dir)
        self.args = list(args)
        self.log_path = Path(log_path) if log_path else self.data_dir / "server.log"
        self.command = list(command) if command else [sys.executable, "-m", "ghga_tasks"]
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.detach = detach
        self.timeout = timeout
        self.urls: Dict[str, str] = {}
        self.proc: Optional[subprocess.Popen] = None
        self.start()

    def start(self) -> None:
        """Start (again, after stop() or kill()) and return once the server is ready."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [*self.command, "serve", "--data-dir", str(self.data_dir), *self.args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                env=self.env,
                cwd=self.cwd,
                start_new_session=self.detach,
                preexec_fn=death_signal() if self.detach else None,
            )
        line, closed = _ready_line(self.proc, self.timeout)
        try:
            urls = json.loads(line)
            if not all(isinstance(urls.get(key), str) for key in READY_KEYS):
                raise ValueError(line)
        except (ValueError, AttributeError):
            exited = _exit_code(self.proc, 5 if closed else 0)
            self.kill()
            why = (
                f"exited with {exited}"
                if exited is not None
                else "printed no ready line"
                if line
                else f"was not ready within {self.timeout:g} s"
            )
            raise ServerNotReady(
                f"ghga-cli serve {why} (stdout {line!r}); log {self.log_path}:\n{self.log_tail()}",
                self.log_path,
            ) from None
        self.urls = urls

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 30) -> None:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL; the server's own PID only."""
        if not self.running():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL (a crash); the server's SeaweedFS follows it (parent-death signal)."""
        if self.running():
            self.proc.kill()
            self.proc.wait(timeout=30)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _ready_line(proc: subprocess.Popen, timeout: float) -> Tuple[str, bool]:
    """The first stdout line ("" if the server closes stdout or stays silent) and whether
    stdout is closed; the rest is drained on a thread, so the server never blocks on it."""
    first: List[str] = []
    got, closed = threading.Event(), threading.Event()

    def drain() -> None:
        with proc.stdout:
            for raw in proc.stdout:
                if not got.is_set():
                    first.append(raw.decode(errors="replace").strip())
                    got.set()
        closed.set()
        got.set()

    threading.Thread(target=drain, daemon=True).start()
    got.wait(timeout)
    return (first[0] if first else ""), closed.is_set()


def _exit_code(proc: subprocess.Popen, wait: float) -> Optional[int]:
    try:
        return proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        return None
