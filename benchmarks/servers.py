"""What every backend under test shares: the `Stack` interface and its server processes.

Every server process gets PR_SET_PDEATHSIG, so a killed campaign leaves no servers behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Optional

from ghga_tasks.server.launcher import death_signal

from .paths import REPO


def free_port(limit: int = 55535) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port <= limit:
            return port
    raise RuntimeError("no free port below %d" % limit)


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is free
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def find_exe(name: str) -> Optional[str]:
    """Next to this Python first (a venv's bin/ that is not on PATH), then PATH."""
    here = Path(sys.executable).parent / name
    if here.exists() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which(name)


def spawn(argv: list[str], log: Path, **kw) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as err:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            preexec_fn=death_signal(),
            **kw,
        )


def terminate(proc: Optional[subprocess.Popen], grace: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)


class Stack:
    """One backend: its API (`ServiceApi`, `DirectApi` or a stub), S3 facts, processes."""

    backend = "?"
    keeps_store = False  # can stop leaving its store for a later start (`stop(keep_store)`)

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.api = None
        self.s3: dict = {}
        self.procs: list[subprocess.Popen] = []
        self.extra_pids: list[int] = []

    def server_pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.poll() is None] + list(self.extra_pids)

    def gc(self) -> None:
        """Make deleted objects' space free again (between runs)."""

    def stop(self, keep_store: bool = False) -> None:
        for proc in reversed(self.procs):
            terminate(proc)
        self.procs.clear()

    def store_facts(self) -> Optional[dict]:
        """What the S3 store says of its data (Ceph: BlueStore compression), or None."""
        return None

    def facts(self) -> dict:
        return {
            "backend": self.backend,
            "api": getattr(self.api, "kind", "?"),
            "s3_endpoint": self.s3.get("endpoint"),
        }


def ghga_cli_argv() -> Optional[list[str]]:
    exe = find_exe("ghga-cli")
    if exe:
        return [exe]
    try:
        import ghga_tasks.cli  # noqa: F401
    except Exception:  # noqa: BLE001 - not written yet, or broken: no client
        return None
    return [sys.executable, "-m", "ghga_tasks"]


def ghga_env(home: Optional[Path] = None, sources: Optional[Path] = None) -> dict:
    """The environment for ghga-cli: this checkout's sources (or the checkout `sources`), no
    GHGA_TASKS_* settings, and with `home` no user config file either."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHGA_TASKS_")}
    first = str(sources or REPO)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [first, env.get("PYTHONPATH")]))
    if home is not None:
        env["HOME"] = str(home)
    return env
