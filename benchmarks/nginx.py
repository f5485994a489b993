"""Client-only limit: nginx serves the source files, a DRS stub points at them.

nginx (sendfile, one worker per core, no access log) costs far less CPU than an S3
server, so a download measured here shows the client's own ceiling on two cores. The
DRS stub is a ~40-line HTTP server in the harness process: GET
``/ga4gh/drs/v1/objects/{id}`` answers 200 with the size, the SHA-256 and an
``access_url`` on nginx. It is hit once per download, so its CPU is negligible.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from .stack import Stack, free_port, spawn

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


class _DrsStub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int):
        self.objects: dict[str, dict] = {}
        super().__init__(("127.0.0.1", port), _DrsHandler)


class _DrsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):  # noqa: N802
        prefix = "/ga4gh/drs/v1/objects/"
        obj = self.server.objects.get(self.path[len(prefix):]) if self.path.startswith(prefix) else None
        if self.path == "/health":
            body, code = {"status": "OK"}, 200
        elif obj is None:
            body, code = {"msg": "no such object", "status_code": 404}, 404
        else:
            body, code = obj, 200
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class StubApi:
    """The part of `ServiceApi` the download runs use, answered by the stub."""

    kind = "drs-stub+nginx"

    def __init__(self, stub: _DrsStub, nginx_url: str, root: Path):
        self.stub, self.nginx_url, self.root = stub, nginx_url, root
        self.drs_api = f"http://127.0.0.1:{stub.server_address[1]}/ga4gh/drs/v1"
        self.upload_api = None

    def seed(self, file_id: str, path: Path, sha256: str) -> None:
        rel = path.resolve().relative_to(self.root.resolve())
        self.stub.objects[file_id] = {
            "id": file_id, "self_uri": f"drs://127.0.0.1/{file_id}", "name": file_id,
            "size": path.stat().st_size, "created_time": "2024-01-01T00:00:00Z",
            "checksums": [{"type": "sha-256", "checksum": sha256}],
            "access_methods": [{"type": "https",
                                "access_url": {"url": f"{self.nginx_url}/{rel}"}}]}

    def delete(self, file_id: str) -> None:
        self.stub.objects.pop(file_id, None)

    def drs_object(self, file_id: str, deadline: float = 0) -> dict:
        return self.stub.objects[file_id]

    def access_url(self, file_id: str) -> str:
        return self.stub.objects[file_id]["access_methods"][0]["access_url"]["url"]


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
        conf.write_text(CONF.format(workers=cfg.get("workers", "auto"), dir=data_dir,
                                    port=port, root=root))
        self.procs.append(spawn([nginx, "-c", str(conf), "-p", str(data_dir)],
                                data_dir / "nginx.stderr", stdout=subprocess.DEVNULL))
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                requests.get(url + "/", timeout=1)
                break
            except requests.RequestException:
                if self.procs[0].poll() is not None:
                    raise RuntimeError("nginx failed: " +
                                       (data_dir / "nginx.stderr").read_text()[-1000:])
                time.sleep(0.1)
        self.stub = _DrsStub(free_port())
        threading.Thread(target=self.stub.serve_forever, daemon=True).start()
        self.api = StubApi(self.stub, url, root)

    def stop(self) -> None:
        if getattr(self, "stub", None) is not None:
            self.stub.shutdown()
            self.stub.server_close()
            self.stub = None
        super().stop()
