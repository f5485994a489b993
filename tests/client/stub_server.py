"""A scripted HTTP server on loopback for answers the reference server never gives
(junk, 403 from the API, odd Retry-After headers, a DRS object with a wrong checksum,
answers that drip in byte by byte)."""

from __future__ import annotations

import http.server
import re
import ssl
import threading
from typing import Callable, Dict, Tuple, Union


class Drip:
    """A body (and, with headers_too, the status line and headers) sent one byte every
    `interval` seconds: a server that never goes quiet long enough for a read timeout."""

    def __init__(self, data: bytes, interval: float = 0.5, headers_too: bool = False):
        self.data = data
        self.interval = interval
        self.headers_too = headers_too


Answer = Tuple[int, Dict[str, str], Union[bytes, Drip]]


class StubServer:
    def __init__(self, handler: Callable[[str, str, dict], Answer], tls: tuple = None):
        self.handler = handler
        self.requests: list = []
        self.closed = threading.Event()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                stub.requests.append((self.command, self.path, dict(self.headers)))
                status, headers, body = stub.handler(self.command, self.path, dict(self.headers))
                drip = body if isinstance(body, Drip) else None
                data = drip.data if drip else body
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                if drip is None:
                    self.end_headers()
                    self.wfile.write(data)
                    return
                head = b"".join(self._headers_buffer) + b"\r\n"
                self._headers_buffer = []
                if not drip.headers_too:
                    self.wfile.write(head)
                    head = b""
                self.close_connection = True
                slow = head + data
                try:
                    for i in range(len(slow)):
                        if stub.closed.wait(drip.interval):
                            return
                        self.wfile.write(slow[i:i + 1])
                except OSError:  # the client gave up
                    pass

            do_GET = do_POST = do_PATCH = do_PUT = _answer

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls:  # (certfile, keyfile)
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
    return 206, {"Content-Range": f"bytes {first}-{last}/{len(data)}"}, data[first:last + 1]
