"""Run the server: lock the data dir, start or connect S3, serve, stop everything again.

stdout carries exactly one JSON line (the API URLs) once the port accepts requests;
everything else goes to stderr.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import IO, Callable, Optional

from ..errors import GhgaError, LockedError
from ..state import FileLock
from .config import KnobBox, Settings
from .db import Database
from .errors import ApiError
from .seaweed import Seaweed, SeaweedError, find_weed

INSTALL_HINT = "pip install 'ghga-tasks[server]'"

log = logging.getLogger("ghga_tasks.server")


class ServeError(Exception):
    """Start-up failed; `code` is the exit status."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket for uvicorn.

    Made with proto IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on
    connections whose socket says it is TCP, and with Nagle on, the body of every answer
    after the first on a kept-alive connection waits for the client's delayed ACK of the
    headers (about 40 ms a request on Linux)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except BaseException:
        sock.close()
        raise
    return sock


def _make_server(app, on_ready: Callable[[], None]):
    """uvicorn that announces itself when listening and leaves signals to us."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # uvicorn >= 0.29 would re-raise the signal afterwards
            yield

        def install_signal_handlers(self) -> None:  # older uvicorn
            pass

        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            if not self.should_exit:
                on_ready()

    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=True,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=5,
        lifespan="off",
    )
    return Server(config)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):  # they would log URLs
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _lock_data_dir(data_dir: Path) -> FileLock:
    lock = FileLock(data_dir / "server.lock", f"the data dir {data_dir}")
    try:
        return lock.__enter__()
    except LockedError as exc:
        raise ServeError(
            f"another server (pid {getattr(exc, 'holder', '?')}) uses the data dir {data_dir}", 78
        ) from None
    except GhgaError as exc:
        raise ServeError(exc.message, 73) from None


def _seaweed_failed(exc: SeaweedError, weed: str) -> str:
    """One line for a SeaweedFS that did not start: its last log line, not the whole tail."""
    _, _, tail = str(exc).partition("\n")
    last = next((line.strip() for line in reversed(tail.splitlines()) if line.strip()), "")
    return f"SeaweedFS ({weed}) did not start; " + (
        f"its last log line: {last[:300]}" if last else "it logged nothing"
    )


def _url(host: str, port: int, path: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"


def run(settings: Settings, announce_to: IO[str], log_level: str = "info") -> int:
    """Serve until SIGINT or SIGTERM; returns the exit status."""
    setup_logging(log_level)
    stopping = threading.Event()
    server = None

    def on_signal(signum, frame):
        log.info("received %s, stopping", signal.Signals(signum).name)
        if server is not None:
            server.force_exit = server.should_exit and signum == signal.SIGINT
            server.should_exit = True
        stopping.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    data_dir = settings.data_dir
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        lock = _lock_data_dir(data_dir)
    except OSError as exc:  # a file in the way, read-only, full
        for s, handler in previous.items():
            signal.signal(s, handler)
        raise ServeError(f"cannot use the data dir {data_dir}: {exc.strerror or exc}", 73) from None
    seaweed: Optional[Seaweed] = None
    core = None
    db: Optional[Database] = None
    try:
        started = time.monotonic()
        if settings.s3 is None:
            weed = find_weed(settings.weed)
            if weed is None:
                raise ServeError(
                    "the SeaweedFS binary `weed` was not found; install it with "
                    f"{INSTALL_HINT} (or pass --s3-endpoint)",
                    78,
                )
            try:
                seaweed = Seaweed(data_dir / "seaweedfs", weed)
                seaweed.launch()  # boots while the imports below run
            except (OSError, SeaweedError) as exc:
                raise ServeError(f"cannot start SeaweedFS ({weed}): {exc}", 69) from None
        try:
            from .app import create_app
            from .core import Core
            from .storage import Storage
        except ImportError as exc:
            raise ServeError(
                f"the server extra is incomplete ({exc}); install it with {INSTALL_HINT}", 78
            ) from None
        try:
            s3 = seaweed.wait_ready(timeout=60) if seaweed else settings.s3
        except SeaweedError as exc:
            raise ServeError(_seaweed_failed(exc, seaweed.weed), 69) from None
        if stopping.is_set():
            return 0
        storage = Storage(s3, settings.buckets())
        db = Database(data_dir / "server.sqlite")
        core = Core(settings, storage, db, KnobBox(settings.knobs))
        try:
            storage.ensure_buckets(
                deadline=time.monotonic() + (30 if seaweed else 10),
                retry_denied=seaweed is not None,
            )
            core.recover()
        except Exception as exc:  # noqa: BLE001 - botocore's many errors
            raise ServeError(
                f"cannot use the S3 store at {s3.endpoint}: {type(exc).__name__}: {exc}", 69
            ) from None
        for reg in settings.registrations:
            try:
                core.register(reg)
            except ApiError as exc:
                raise ServeError(f"--register {reg.file_id}: {exc.description}", 78) from None
        core.start()

        try:
            sock = listening_socket(settings.host, settings.port)
        except OSError as exc:
            raise ServeError(
                f"cannot listen on {settings.host}:{settings.port}: {exc}", 78
            ) from None
        port = sock.getsockname()[1]

        def announce() -> None:
            line = {
                "upload_api": _url(settings.host, port, "/upload"),
                "drs_api": _url(settings.host, port, "/ga4gh/drs/v1"),
                "admin_api": _url(settings.host, port, "/admin"),
                "s3_endpoint": s3.endpoint,
            }
            announce_to.write(json.dumps(line) + "\n")
            announce_to.flush()
            log.info(
                "serving on %s (ready after %.2f s)",
                _url(settings.host, port, "/"),
                time.monotonic() - started,
            )

        server = _make_server(create_app(core), on_ready=announce)
        if stopping.is_set():
            return 0
        server.run(sockets=[sock])
        return 0
    finally:
        if core is not None:
            core.stop()
        if db is not None:
            db.close()
        if seaweed is not None:
            seaweed.stop()
        lock.__exit__(None, None, None)
        for s, handler in previous.items():
            signal.signal(s, handler)
        log.info("stopped")
