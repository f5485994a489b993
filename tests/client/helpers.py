"""Helpers for client tests: run the real CLI in a subprocess against the live stack."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

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
        proc = cli(
            "upload-by-id",
            "--api-url",
            api,
            "--file-id",
            file_id,
            "--file-path",
            str(path),
            "--state-dir",
            str(client.state_dir),
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
        return cli(
            "upload-by-id",
            "--api-url",
            self.stack.upload_api,
            "--file-id",
            file_id,
            "--file-path",
            str(path),
            "--state-dir",
            str(self.state_dir),
            "--json",
            "--quiet",
            *extra,
        )

    def download(self, file_id: str, out_dir: Path, *extra: str) -> subprocess.CompletedProcess:
        return cli(
            "download-by-id",
            "--api_url",
            self.stack.drs_api,
            "--file_id",
            file_id,
            "--output_dir",
            str(out_dir),
            "--state_dir",
            str(self.state_dir),
            "--json",
            "--quiet",
            *extra,
        )

    def put(self, tmp_path: Path, size: int, register_sha: bool = True) -> tuple:
        """Register, upload and wait for acceptance of a new random file: (id, path, sha)."""
        file_id = new_id()
        path = tmp_path / f"{file_id}.src"
        sha = make_file(path, size)
        self.stack.register(file_id, size, sha256=sha if register_sha else None)
        proc = self.upload(file_id, path, "--wait")
        assert proc.returncode == 0, proc.stderr
        return file_id, path, sha
