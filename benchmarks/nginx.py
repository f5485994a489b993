"""Client-only limit: nginx serves the source files, a DRS stub points at them.

nginx (sendfile, one worker per core, no access log) costs far less CPU than an S3
server, so a download measured here shows the client's own ceiling on two cores. The
DRS stub (`ghga_tasks.server.stub`) runs in the harness process: GET
``/ga4gh/drs/v1/objects/{id}`` answers 200 with the size, the SHA-256 and an
``access_url`` on nginx. It is hit once per download, so its CPU is negligible.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import requests

from ghga_tasks.server.stub import JSON, Answer, StubServer, drs_object

from .servers import Stack, free_port, spawn

CONF = """\
user root;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
daemon off;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    types {{ }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


class StubApi:
    """The part of `ServiceApi` the download runs use, answered by a DRS stub."""

    kind = "drs-stub+nginx"
    prefix = "/ga4gh/drs/v1/objects/"

    def __init__(self, nginx_url: str, root: Path):
        self.nginx_url, self.root = nginx_url, root
        self.objects: dict[str, dict] = {}
        self.stub = StubServer(self._answer)
        self.drs_api = f"{self.stub.url}/ga4gh/drs/v1"
        self.upload_api = None

    def _answer(self, method: str, path: str, headers: dict) -> Answer:
        obj = self.objects.get(path[len(self.prefix) :]) if path.startswith(self.prefix) else None
        if path == "/health":
            body, code = {"status": "OK"}, 200
        elif obj is None:
            body, code = {"msg": "no such object", "status_code": 404}, 404
        else:
            body, code = obj, 200
        return code, JSON, json.dumps(body).encode()

    def seed(self, file_id: str, path: Path, sha256: str, state_dir: Path) -> None:
        rel = path.resolve().relative_to(self.root.resolve())
        self.objects[file_id] = drs_object(
            file_id,
            path.stat().st_size,
            sha256,
            f"{self.nginx_url}/{rel}",
            access_type="https",
            name=file_id,
        )

    def delete(self, file_id: str) -> None:
        self.objects.pop(file_id, None)

    def drs_object(self, file_id: str, deadline: float = 0) -> dict:
        return self.objects[file_id]

    def access_url(self, file_id: str) -> str:
        return self.objects[file_id]["access_methods"][0]["access_url"]["url"]

    def close(self) -> None:
        self.stub.close()


class NginxStack(Stack):
    backend = "nginx"

    def __init__(self, data_dir: Path, cfg: dict):
        super().__init__(data_dir)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        root = Path(cfg["root"])
        shutil.rmtree(data_dir, ignore_errors=True)
        (data_dir / "tmp").mkdir(parents=True)
        port = free_port()
        conf = data_dir / "nginx.conf"
        conf.write_text(
            CONF.format(workers=cfg.get("workers", "auto"), dir=data_dir, port=port, root=root)
        )
        self.procs.append(
            spawn(
                [nginx, "-c", str(conf), "-p", str(data_dir)],
                data_dir / "nginx.stderr",
                stdout=subprocess.DEVNULL,
            )
        )
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                requests.get(url + "/", timeout=1)
                break
            except requests.RequestException:
                if self.procs[0].poll() is not None:
                    raise RuntimeError(
                        "nginx failed: " + (data_dir / "nginx.stderr").read_text()[-1000:]
                    )
                time.sleep(0.1)
        self.api = StubApi(url, root)

    def stop(self, keep_store: bool = False) -> None:
        if isinstance(self.api, StubApi):
            self.api.close()
        super().stop()
