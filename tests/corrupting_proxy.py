"""A forward HTTP proxy on loopback that flips one bit in chosen request bodies.

Point a client at it with `http_proxy=http://127.0.0.1:PORT` (libcurl honours it): every
request is forwarded unchanged, Host header included (so pre-signed signatures stay valid),
except that a request body for which `corrupt(method, url)` says yes arrives at the server
with one bit flipped, as a faulty link would deliver it.
"""

from __future__ import annotations

import socket
import threading
from typing import Callable, List, Tuple
from urllib.parse import urlsplit

TIMEOUT = 60


class CorruptingProxy:
    def __init__(self, corrupt: Callable[[str, str], bool]):
        self.corrupt = corrupt
        self.corrupted: List[str] = []  # URLs (without query) whose body was flipped
        self.requests: List[Tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.close()

    def __enter__(self) -> "CorruptingProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(TIMEOUT)
        try:
            with conn:
                self._relay(conn)
        except OSError:
            pass

    def _relay(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        request_line = reader.readline().decode("latin-1").rstrip("\r\n")
        if not request_line:
            return
        method, url, _ = request_line.split(" ", 2)
        headers = []
        length = 0
        expect = False
        while True:
            line = reader.readline().decode("latin-1").rstrip("\r\n")
            if not line:
                break
            name, _, value = line.partition(":")
            lower = name.strip().lower()
            if lower == "content-length":
                length = int(value.strip())
            if lower == "expect":
                expect = True
                continue
            if lower in ("proxy-connection", "connection"):
                continue
            headers.append(line)
        if expect:
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = reader.read(length) if length else b""
        target = urlsplit(url)
        with self._lock:
            self.requests.append((method, target._replace(query="").geturl()))
            flip = bool(body) and self.corrupt(method, url)
            if flip:
                self.corrupted.append(target._replace(query="").geturl())
        if flip:
            at = len(body) // 2
            body = body[:at] + bytes([body[at] ^ 0x10]) + body[at + 1 :]
        path = target.path + (f"?{target.query}" if target.query else "")
        head = "\r\n".join([f"{method} {path} HTTP/1.1", *headers, "Connection: close"])
        with socket.create_connection((target.hostname, target.port or 80), TIMEOUT) as up:
            up.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
            while True:
                chunk = up.recv(1 << 16)
                if not chunk:
                    break
                conn.sendall(chunk)
