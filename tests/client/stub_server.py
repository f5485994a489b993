"""A scripted HTTP server on loopback for answers the reference server never gives
(junk, 403 from the API, odd Retry-After headers, a DRS object with a wrong checksum)."""

from __future__ import annotations

import http.server
import re
import ssl
import threading
from typing import Callable, Dict, Tuple

Answer = Tuple[int, Dict[str, str], bytes]


class StubServer:
    def __init__(self, handler: Callable[[str, str, dict], Answer], tls: tuple = None):
        self.handler = handler
        self.requests: list = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
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
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

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
        self.httpd.shutdown()
        self.httpd.server_close()


def serve_range(data: bytes, headers: dict) -> Answer:
    """A minimal storage GET with Range support."""
    match = re.fullmatch(r"bytes=(\d+)-(\d+)", headers.get("Range", ""))
    if not match:
        return 200, {}, data
    first, last = int(match.group(1)), min(int(match.group(2)), len(data) - 1)
    return 206, {"Content-Range": f"bytes {first}-{last}/{len(data)}"}, data[first:last + 1]
