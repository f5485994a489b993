"""Helpers for client tests: run the real CLI in a subprocess against the live stack."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from ghga_tasks.server.stub import JSON, drs_object, serve_range
from ghga_tasks.units import MiB


def new_id(prefix: str = "f") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def make_file(path: Path, size: int) -> str:
    """Random bytes (incompressible, distinct per file); returns the SHA-256."""
    digest = hashlib.sha256()
    block = 4 * MiB
    with open(path, "wb") as fh:
        left = size
        while left:
            data = os.urandom(min(block, left))
            fh.write(data)
            digest.update(data)
            left -= len(data)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(4 * MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def cli(*args: str, env: dict = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GHGA_TASKS_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "ghga_tasks", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        stdin=subprocess.DEVNULL,
    )


def cli_popen(*args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHGA_TASKS_")}
    return subprocess.Popen(
        [sys.executable, "-m", "ghga_tasks", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def _by_id(command, path_option, api_url, file_id, path, state_dir, extra, sep) -> list:
    named = {"api-url": api_url, "file-id": file_id, path_option: str(path)}
    if state_dir is not None:
        named["state-dir"] = str(state_dir)
    args = [command]
    for name, value in named.items():
        args += ["--" + name.replace("-", sep), value]
    return args + list(extra)


def download_args(api_url: str, file_id: str, out_dir, state_dir=None, *extra: str, sep="-"):
    """`download-by-id --api-url URL --file-id ID --output-dir OUT [--state-dir S] *extra`:
    --state-dir left out when None; sep="_" spells the four --api_url, --file_id and so on."""
    return _by_id("download-by-id", "output-dir", api_url, file_id, out_dir, state_dir, extra, sep)


def upload_args(api_url: str, file_id: str, path, state_dir=None, *extra: str, sep="-"):
    """`upload-by-id --api-url URL --file-id ID --file-path PATH [--state-dir S] *extra`."""
    return _by_id("upload-by-id", "file-path", api_url, file_id, path, state_dir, extra, sep)


def cli_download(api_url, file_id, out_dir, state_dir=None, *extra, env=None, timeout=300):
    """`ghga-cli` + download_args(...) in a subprocess."""
    args = download_args(api_url, file_id, out_dir, state_dir, *extra)
    return cli(*args, env=env, timeout=timeout)


def cli_upload(api_url, file_id, path, state_dir=None, *extra, env=None, timeout=300):
    """`ghga-cli` + upload_args(...) in a subprocess."""
    return cli(*upload_args(api_url, file_id, path, state_dir, *extra), env=env, timeout=timeout)


def wait_until(predicate, what: str, timeout: float = 60, proc=None, interval: float = 0.05):
    """Poll until predicate() is true and return its value. Fails after `timeout` seconds,
    or at once when `proc` (a Popen) has exited before; both failures name `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            stderr = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"exited ({proc.returncode}) before {what}: {stderr}")
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(interval)


def kill_when(proc, predicate, timeout: float = 60) -> None:
    """SIGKILL proc once predicate() is true; it must not finish before."""
    wait_until(predicate, "progress to kill at", timeout, proc)
    kill(proc)
    assert proc.returncode == -signal.SIGKILL


def kill(proc) -> None:
    """SIGKILL proc (unless it was reaped already) and reap it."""
    proc.kill()
    proc.wait(timeout=30)


def ledger_entries(state_dir: Path, direction: str, name: str) -> list:
    """The entries of the first `direction`/*/`name` ledger below state_dir, up to a torn line."""
    files = list((state_dir / direction).glob(f"*/{name}"))
    if not files:
        return []
    lines = files[0].read_text().splitlines()
    entries = []
    for line in lines[1:]:
        try:
            entries.append(json.loads(line))
        except ValueError:
            break
    return entries


def ranges_logged(state_dir: Path) -> list:
    """The download ledger's entries (ranges, pieces and checkpoints)."""
    return ledger_entries(state_dir, "downloads", "ranges.jsonl")


def parts_logged(state_dir: Path) -> list:
    """The upload ledger's entries (stored parts)."""
    return ledger_entries(state_dir, "uploads", "parts.jsonl")


def bytes_logged(state_dir: Path) -> int:
    """The bytes the download ledger records as written."""
    return sum(e["size"] for e in ranges_logged(state_dir) if "offset" in e)


def api_error(status: int, exception_id: str, description: str):
    """A stub handler that answers every request with this error of the protocol."""
    body = json.dumps({"exception_id": exception_id, "description": description}).encode()
    return lambda method, path, headers: (status, JSON, body)


def stub_object(
    stub,
    data: bytes,
    sha: str = None,
    *,
    size: int = None,
    path: str = "/data",
    staging=None,
    storage=None,
    **changes,
):
    """A StubServer, started with stub(handler), that serves the DRS object "x" (`data` at
    `path` on the stub; `size`, `sha` and `changes` override what the object says) and its
    bytes with Range support. `staging(path)` may answer an /objects/ request first (None:
    the object); `storage(status, headers, body)` turns serve_range's answer into another."""
    sha = hashlib.sha256(data).hexdigest() if sha is None else sha
    size = len(data) if size is None else size

    def handler(method, request_path, headers):
        if request_path.startswith("/objects/"):
            early = staging(request_path) if staging else None
            if early is not None:
                return early
            obj = drs_object("x", size, sha, f"{srv.url}{path}", **changes)
            return 200, JSON, json.dumps(obj).encode()
        answer = serve_range(data, headers)
        return storage(*answer) if storage else answer

    srv = stub(handler)
    return srv


def upload_api(
    srv_url,
    data: bytes,
    file_meta: dict = None,
    attempt: dict = None,
    signed: dict = None,
    puts: list = None,
    etags: list = (),
):
    """A stub handler for the Upload API (file "x", attempt "u1", one part) and storage at
    srv_url(), with any answer replaced: `puts` collects the headers of each PUT, which is
    answered with the ETags in `etags` in turn, then with the MD5 of `data`."""
    puts = [] if puts is None else puts
    meta = {
        "file_id": "x",
        "file_name": "x",
        "size": len(data),
        "sha256": None,
        "latest_upload_id": None,
        **(file_meta or {}),
    }
    attempt = {
        "upload_id": "u1",
        "file_id": "x",
        "part_size": 16 * MiB,
        "status": "pending",
        **(attempt or {}),
    }

    def handler(method, path, headers):
        if method == "GET" and path == "/files/x":
            return 200, JSON, json.dumps(meta).encode()
        if (method, path) in (("POST", "/uploads"), ("GET", "/uploads/u1")):
            return 200, JSON, json.dumps(attempt).encode()
        if method == "POST" and path == "/uploads/u1/parts/1/signed_urls":
            url = signed if signed is not None else {"url": f"{srv_url()}/b/x?partNumber=1&s=1"}
            return 200, JSON, json.dumps(url).encode()
        if method == "PUT":
            puts.append(headers)
            still_wrong = etags[len(puts) - 1 :]
            etag = still_wrong[0] if still_wrong else hashlib.md5(data).hexdigest()
            return 200, {"ETag": f'"{etag}"'}, b""
        if method == "PATCH" and path == "/uploads/u1":
            return 204, {}, b""
        return 404, JSON, b'{"exception_id": "notFound", "description": "no"}'

    return handler


def upload_with_a_part_corrupted_once(
    client: "Client", file_id: str, path: Path, part: int, *extra: str
) -> tuple:
    """Upload through a proxy that flips a bit in the first PUT of `part`: (process, proxy)."""
    from corrupting_proxy import CorruptingProxy

    seen = []

    def first_put_of_part(method: str, url: str) -> bool:
        if method == "PUT" and f"partNumber={part}&" in url + "&" and not seen:
            seen.append(url)
            return True
        return False

    with CorruptingProxy(first_put_of_part) as proxy:
        api = client.stack.upload_api.replace("127.0.0.1", "localhost")  # not proxied
        proc = cli_upload(
            api,
            file_id,
            path,
            client.state_dir,
            "--json",
            "--quiet",
            *extra,
            env={"http_proxy": proxy.url, "no_proxy": "localhost"},
        )
    return proc, proxy


def one_line_error(proc, code: int, *words: str) -> str:
    """The CLI exited with `code` and said why in one `ghga-cli: error:` line naming `words`."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ghga-cli: error: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def json_line(proc: subprocess.CompletedProcess) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, (proc.stdout, proc.stderr)
    return json.loads(lines[0])


class Client:
    """upload()/download() through the CLI against one stack, with one state dir."""

    def __init__(self, stack, state_dir: Path):
        self.stack = stack
        self.state_dir = state_dir

    def upload(self, file_id: str, path: Path, *extra: str) -> subprocess.CompletedProcess:
        api = self.stack.upload_api
        return cli_upload(api, file_id, path, self.state_dir, "--json", "--quiet", *extra)

    def download(self, file_id: str, out_dir: Path, *extra: str) -> subprocess.CompletedProcess:
        """With the other spelling of the options (--api_url, --file_id, ...)."""
        api, state = self.stack.drs_api, self.state_dir
        return cli(
            *download_args(api, file_id, out_dir, state, "--json", "--quiet", *extra, sep="_")
        )

    def download_ok(self, file_id: str, out_dir: Path, sha: str, *extra: str):
        """download(), which must succeed and leave the bytes of `sha` at out_dir/file_id."""
        proc = self.download(file_id, out_dir, *extra)
        assert proc.returncode == 0, proc.stderr
        assert sha256_of(out_dir / file_id) == sha
        return proc

    def start_upload(self, file_id: str, path: Path, *extra: str) -> subprocess.Popen:
        """upload-by-id in the background, --quiet, for a test to kill or signal."""
        args = upload_args(self.stack.upload_api, file_id, path, self.state_dir, *extra)
        return cli_popen(*args, "--quiet")

    def start_download(self, file_id: str, out_dir: Path, *extra: str) -> subprocess.Popen:
        """download-by-id in the background, --quiet, for a test to kill or signal."""
        args = download_args(self.stack.drs_api, file_id, out_dir, self.state_dir, *extra)
        return cli_popen(*args, "--quiet")

    def put_and_start_download(self, tmp_path: Path, size: int, *extra: str) -> tuple:
        """put() a new file, start_download() it into tmp_path/out: (id, sha, out, process)."""
        file_id, _, sha = self.put(tmp_path, size)
        out = tmp_path / "out"
        out.mkdir()
        return file_id, sha, out, self.start_download(file_id, out, *extra)

    def new_file(self, tmp_path: Path, size: int, register_sha: bool = True) -> tuple:
        """Register a new random file (with its SHA-256 or none): (id, path, sha)."""
        file_id = new_id()
        path = tmp_path / f"{file_id}.src"
        sha = make_file(path, size)
        self.stack.register(file_id, size, sha256=sha if register_sha else None)
        return file_id, path, sha

    def put(self, tmp_path: Path, size: int, register_sha: bool = True) -> tuple:
        """Register, upload and wait for acceptance of a new random file: (id, path, sha)."""
        file_id, path, sha = self.new_file(tmp_path, size, register_sha)
        proc = self.upload(file_id, path, "--wait")
        assert proc.returncode == 0, proc.stderr
        return file_id, path, sha
