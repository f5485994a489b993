"""Embedded SeaweedFS (`weed mini`) under the data dir, with stable S3 credentials.

Layout under `root`: data/ (weed -dir), logs/ (weed -logdir), weed.out (its stdout and
stderr), s3.json (identities: signatures and expiry are enforced only with it),
ports.json (last ports, reused when free), weed.pid.
"""

from __future__ import annotations

import glob
import http.client
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

from .config import S3Settings
from .launcher import death_signal

log = logging.getLogger("ghga_tasks.server.seaweed")

PORT_NAMES = ("master", "volume", "filer", "s3", "admin")
MAX_PORT = 55535  # gRPC listens on port + 10000
GRPC_OFFSET = 10000
STOP_GRACE = 5  # seconds between SIGTERM and SIGKILL


class SeaweedError(RuntimeError):
    pass


def find_weed(explicit: Optional[str] = None) -> Optional[str]:
    """The `weed` binary: explicit path, next to sys.executable (venv not activated), PATH."""
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_ports(count: int, preferred: Optional[List[int]] = None) -> List[int]:
    """`count` free loopback ports <= 55535 whose +10000 twins are free too."""
    if (
        preferred
        and len(preferred) == count
        and len(set(preferred)) == count
        and all(p <= MAX_PORT and port_free(p) and port_free(p + GRPC_OFFSET) for p in preferred)
    ):
        return list(preferred)
    held: List[socket.socket] = []
    ports: List[int] = []
    try:
        for _ in range(500):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            twin = port + GRPC_OFFSET
            if (
                port <= MAX_PORT
                and twin not in ports
                and port - GRPC_OFFSET not in ports
                and port_free(twin)
            ):
                held.append(s)
                ports.append(port)
                if len(ports) == count:
                    return ports
            else:
                s.close()
    finally:
        for s in held:
            s.close()
    raise SeaweedError("no free port pairs (port, port+10000) found on 127.0.0.1")


class Seaweed:
    def __init__(self, root: Path, weed: str):
        self.root = root
        self.weed = weed
        self.proc: Optional[subprocess.Popen] = None
        self.ports: Dict[str, int] = {}
        for sub in ("data", "logs"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    def credentials(self) -> S3Settings:
        """Credentials from s3.json, created once with random keys."""
        path = self.root / "s3.json"
        if not path.exists():
            doc = {
                "identities": [
                    {
                        "name": "ghga-server",
                        "credentials": [
                            {
                                "accessKey": "GHGA" + secrets.token_hex(8).upper(),
                                "secretKey": secrets.token_urlsafe(30),
                            }
                        ],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, indent=1))
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        cred = json.loads(path.read_text())["identities"][0]["credentials"][0]
        return S3Settings(endpoint="", access_key=cred["accessKey"], secret_key=cred["secretKey"])

    def start(self, timeout: float = 30) -> S3Settings:
        """Start `weed mini`, wait until S3 answers; returns endpoint and credentials."""
        self.launch()
        return self.wait_ready(timeout)

    def launch(self) -> None:
        """Start `weed mini` on free ports without waiting for it."""
        self._stop_stale()
        self.credentials()
        last = self._last_ports() or []
        self._remove_sockets([p for p in last if port_free(p) and port_free(p + GRPC_OFFSET)])
        self.ports = dict(zip(PORT_NAMES, pick_ports(len(PORT_NAMES), last)))
        self._launch()

    def wait_ready(self, timeout: float = 30) -> S3Settings:
        """Wait until S3 answers (relaunching on new ports if weed exits at start)."""
        cred = self.credentials()
        deadline = time.monotonic() + timeout
        for attempt in range(3):  # a port may be taken between picking and binding
            if attempt:
                log.warning("weed mini exited at start (attempt %d), retrying", attempt)
                self.ports = dict(zip(PORT_NAMES, pick_ports(len(PORT_NAMES))))
                self._launch()
            state = self._wait_ready(deadline)
            if state == "ready":
                (self.root / "ports.json").write_text(json.dumps(self.ports))
                endpoint = f"http://127.0.0.1:{self.ports['s3']}"
                log.info("SeaweedFS ready at %s (pid %d)", endpoint, self.proc.pid)
                return S3Settings(endpoint, cred.access_key, cred.secret_key)
            last = self._tail()
            self.stop()
            if state == "timeout":
                break
        raise SeaweedError(f"SeaweedFS did not start; last log lines:\n{last}")

    def _last_ports(self) -> Optional[List[int]]:
        try:
            saved = json.loads((self.root / "ports.json").read_text())
            return [int(saved[name]) for name in PORT_NAMES]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _launch(self) -> None:
        p = self.ports
        args = [
            self.weed,
            f"-logdir={self.root / 'logs'}",
            "mini",
            f"-dir={self.root / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            f"-volume.port={p['volume']}",
            f"-filer.port={p['filer']}",
            f"-s3.port={p['s3']}",
            f"-admin.port={p['admin']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-volume.preStopSeconds=0",
            f"-s3.config={self.root / 's3.json'}",
            "-master.telemetry=false",
        ]
        with open(self.root / "weed.out", "ab") as out:
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=str(self.root),
                start_new_session=True,
                preexec_fn=death_signal(),
            )
        (self.root / "weed.pid").write_text(str(self.proc.pid))

    def _wait_ready(self, deadline: float) -> str:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return "exited"
            conn = http.client.HTTPConnection("127.0.0.1", self.ports["s3"], timeout=1)
            try:
                conn.request("GET", "/")
                conn.getresponse().read()
                return "ready"
            except OSError:
                time.sleep(0.05)
            finally:
                conn.close()
        return "timeout"

    def _tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(
                (self.root / "weed.out").read_text(errors="replace").splitlines()[-lines:]
            )
        except OSError:
            return ""

    def _stop_stale(self) -> None:
        """Stop a weed this data dir started earlier if it survived its server."""
        try:
            pid = int((self.root / "weed.pid").read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError):
            return
        if "weed" in cmdline and f"-dir={self.root / 'data'}" in cmdline:
            log.warning("stopping stale SeaweedFS (pid %d) of this data dir", pid)
            _terminate(pid)

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=STOP_GRACE)
                except subprocess.TimeoutExpired:
                    # Seen: its admin component waits up to 10 s for a master lock at
                    # shutdown. Everything acknowledged is already written to the kernel.
                    log.warning("SeaweedFS did not stop within %d s; killing it", STOP_GRACE)
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            self.proc = None
        (self.root / "weed.pid").unlink(missing_ok=True)
        self._remove_sockets(self.ports.values())

    @staticmethod
    def _remove_sockets(ports) -> None:
        """weed leaves /tmp/seaweedfs-*-PORT.sock behind (also after a crash)."""
        for port in ports:
            for p in (port, port + GRPC_OFFSET):
                for sock in glob.glob(f"/tmp/seaweedfs-*-{p}.sock"):
                    try:
                        os.unlink(sock)
                    except OSError:
                        pass


def _alive(pid: int) -> bool:
    """True while pid runs (a zombie does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _terminate(pid: int) -> None:
    """SIGTERM a process that is not our child, SIGKILL after STOP_GRACE seconds."""
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(STOP_GRACE * 10):
            time.sleep(0.1)
            if not _alive(pid):
                return
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
