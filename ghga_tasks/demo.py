"""`ghga-cli demo`: start the embedded stack, generate a file, upload, download, verify."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import requests

from .api import download_by_id, upload_by_id
from .errors import ConfigError, IntegrityError, OutputError, TransientError
from .server.launcher import ServerNotReady, ServerProcess
from .settings import Settings
from .units import MiB


def generate(path: Path, size: int) -> str:
    """Incompressible bytes, fast: one random MiB, varied by a counter per block."""
    seed = os.urandom(MiB)
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        block_no = 0
        while size > 0:
            block = block_no.to_bytes(8, "little") + seed[8:]
            block = block[: min(MiB, size)]
            fh.write(block)
            digest.update(block)
            size -= len(block)
            block_no += 1
    return digest.hexdigest()


def start_server(data_dir: Path) -> ServerProcess:
    try:
        return ServerProcess(data_dir, ["--retry-after", "1"])
    except ServerNotReady as exc:
        raise TransientError(f"the local stack did not start; see {exc.log_path}") from None


def register(server: ServerProcess, file_id: str, size: int, sha256: str) -> None:
    resp = requests.post(
        server.urls["admin_api"] + "/files",
        timeout=30,
        json={"file_id": file_id, "size": size, "sha256": sha256},
    )
    resp.raise_for_status()


def run_demo(
    size: int,
    settings: Settings,
    work_dir: Optional[str] = None,
    say: Callable[[str], None] = print,
) -> dict:
    try:
        import fastapi  # noqa: F401
    except ImportError:
        raise ConfigError("the demo needs the server extra: pip install 'ghga-tasks[server]'")
    try:
        workspace = tempfile.TemporaryDirectory(prefix="ghga-demo-", dir=work_dir)
    except OSError as exc:  # missing, not a directory, read-only, full
        raise OutputError(
            f"cannot create the demo's directory in "
            f"{work_dir or tempfile.gettempdir()}: {exc.strerror or exc}"
        ) from None
    with workspace as tmp:
        root = Path(tmp)
        (root / "server").mkdir()
        (root / "out").mkdir()
        started = time.monotonic()
        stack = start_server(root / "server")
        try:
            say(f"stack ready in {time.monotonic() - started:.1f} s: {stack.urls['upload_api']}")
            src = root / "demo.bin"
            sha = generate(src, size)
            file_id = f"demo-{os.urandom(4).hex()}"
            register(stack, file_id, size, sha)
            say(f"generated {size} bytes, sha256 {sha[:16]}…; registered as {file_id}")
            cfg = (
                settings
                if settings.state_dir
                else Settings(**{**settings.__dict__, "state_dir": str(root / "state")})
            )
            up = upload_by_id(stack.urls["upload_api"], file_id, str(src), settings=cfg, wait=True)
            say(_figures("upload", up))
            down = download_by_id(stack.urls["drs_api"], file_id, str(root / "out"), settings=cfg)
            say(_figures("download", down))
            if down.sha256 != sha or _sha256(Path(down.path)) != sha:
                raise IntegrityError("the downloaded file differs from the uploaded one")
            say(f"verified: {down.path} is byte-identical (sha256 {sha})")
            return {"upload": up.as_dict(), "download": down.as_dict(), "sha256": sha}
        finally:
            stack.stop()


def _figures(what: str, result) -> str:
    spent = result.transfer_seconds
    rate = result.bytes_transferred / spent / 1e6 if spent else 0.0
    waited = result.seconds - spent
    return (
        f"{what}: {result.status}, {result.bytes_transferred} bytes moved in {spent:.2f} s "
        f"= {rate:.0f} MB/s (plus {waited:.1f} s for the API, "
        f"{'acceptance' if what == 'upload' else 'staging'} and start-up)"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(8 * MiB), b""):
            digest.update(block)
    return digest.hexdigest()
