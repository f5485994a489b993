"""A scripted HTTP server on loopback, standard library only: the DRS stub of the tests and
of the benchmarks' nginx backend.

It gives the answers the reference server never gives (junk, 403 from the API, odd
Retry-After headers, a DRS object with a wrong checksum, a body that drips in byte by byte
or is cut off), and DRS objects for files that are already in place elsewhere:

    def answer(method, path, headers):
        if path.startswith("/objects/"):
            obj = drs_object("x", len(data), sha256, f"{srv.url}/data")
            return 200, JSON, json.dumps(obj).encode()
        return serve_range(data, headers)

    srv = StubServer(answer)
"""

from __future__ import annotations

import http.server
import re
import ssl
import threading
from typing import Callable, Dict, Optional, Tuple, Union

JSON = {"Content-Type": "application/json"}


class Drip:
    """A body (and, with headers_too, the status line and headers) sent one byte every
    `interval` seconds: a server that never goes quiet long enough for a read timeout."""

    def __init__(self, data: bytes, interval: float = 0.5, headers_too: bool = False):
        self.data = data
        self.interval = interval
        self.headers_too = headers_too


class Cut:
    """A body cut off: `length` is announced, the first `sent` bytes of `data` go out, the
    connection is held until `until()` is true (at most `wait` seconds), then dropped.
    `until_met` records whether `until()` was true when it was dropped."""

    def __init__(
        self,
        data: bytes,
        sent: int,
        until: Callable[[], bool] = lambda: True,
        wait: float = 120,
        length: Optional[int] = None,
    ):
        self.data = data[:sent]
        self.length = len(data) if length is None else length
        self.until = until
        self.wait = wait
        self.until_met: Optional[bool] = None


Body = Union[bytes, Drip, Cut]
Answer = Tuple[int, Dict[str, str], Body]
Handler = Callable[[str, str, dict], Answer]


class StubServer:
    """Answers every GET, POST, PATCH and PUT with `handler(method, path, headers)`;
    `requests` keeps (method, path, headers) of each. `tls` is (certfile, keyfile)."""

    def __init__(self, handler: Handler, tls: Optional[Tuple[str, str]] = None):
        self.handler = handler
        self.requests: list = []
        self.closed = threading.Event()
        stub = self

        class RequestHandler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                stub.requests.append((self.command, self.path, dict(self.headers)))
                status, headers, body = stub.handler(self.command, self.path, dict(self.headers))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if isinstance(body, Drip):
                    self._drip(body)
                elif isinstance(body, Cut):
                    self._cut(body)
                else:
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def _drip(self, drip: Drip) -> None:
                self.send_header("Content-Length", str(len(drip.data)))
                head = b"".join(self._headers_buffer) + b"\r\n"
                self._headers_buffer = []
                if not drip.headers_too:
                    self.wfile.write(head)
                    head = b""
                self.close_connection = True
                slow = head + drip.data
                try:
                    for i in range(len(slow)):
                        if stub.closed.wait(drip.interval):
                            return
                        self.wfile.write(slow[i : i + 1])
                except OSError:  # the client gave up
                    pass

            def _cut(self, cut: Cut) -> None:
                self.send_header("Content-Length", str(cut.length))
                self.end_headers()
                self.close_connection = True  # the rest of the body never comes
                try:
                    self.wfile.write(cut.data)
                    self.wfile.flush()
                except OSError:
                    return
                waited = 0.0
                while not cut.until() and waited < cut.wait and not stub.closed.wait(0.05):
                    waited += 0.05
                cut.until_met = cut.until()

            do_GET = do_POST = do_PATCH = do_PUT = _answer

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.closed.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def serve_range(data: bytes, headers: dict) -> Answer:
    """A minimal storage GET with Range support."""
    match = re.fullmatch(r"bytes=(\d+)-(\d+)", headers.get("Range", ""))
    if not match:
        return 200, {}, data
    first, last = int(match.group(1)), min(int(match.group(2)), len(data) - 1)
    return 206, {"Content-Range": f"bytes {first}-{last}/{len(data)}"}, data[first : last + 1]


def drs_object(
    file_id: str, size: int, sha256: str, url: str, access_type: str = "s3", **changes
) -> dict:
    """A DrsObject (PROTOCOL.md § 2) whose one access method is `url`; `changes` override
    or add fields."""
    obj = {
        "id": file_id,
        "self_uri": f"drs://127.0.0.1/{file_id}",
        "size": size,
        "created_time": "2024-01-01T00:00:00Z",
        "checksums": [{"type": "sha-256", "checksum": sha256}],
        "access_methods": [{"type": access_type, "access_url": {"url": url}}],
    }
    obj.update(changes)
    return obj
