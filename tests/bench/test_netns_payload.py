"""The client namespace's byte accounting, which measures what a killed transfer had moved:
the TCP payload that crossed the capped veth, per direction, to within the HTTP headers."""

from __future__ import annotations

import http.server
import os
import secrets
import subprocess
import threading

import pytest

from benchmarks.netns import Netns

SIZE = 16 * 2**20


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):  # noqa: N802 - the stdlib's name
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def do_PUT(self):  # noqa: N802
        left = int(self.headers["Content-Length"])
        while left:
            left -= len(self.rfile.read(min(left, 1 << 20)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_payload_bytes_count_bodies_not_packet_headers(tmp_path):
    _Handler.body = secrets.token_bytes(SIZE)
    (tmp_path / "up").write_bytes(_Handler.body)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/blob"
    octets = [secrets.randbelow(150) + 100, secrets.randbelow(254) + 1]
    ns = Netns(
        name=f"gpl{secrets.token_hex(3)}",
        rate="1gbit",
        addr="127.{}.{}.2".format(*octets),
    )
    ns.up()
    try:
        moved = {}
        for direction, args in (
            ("download", ["-o", str(tmp_path / "down")]),
            ("upload", ["-T", str(tmp_path / "up"), "-o", "/dev/null"]),
        ):
            before = ns.payload_bytes()[direction]
            subprocess.run(
                ns.prefix() + ["curl", "-sS", "--fail", *args, url], check=True, timeout=120
            )
            moved[direction] = ns.payload_bytes()[direction] - before
    finally:
        ns.down()
        server.shutdown()
    assert (tmp_path / "down").read_bytes() == _Handler.body
    for direction, payload in moved.items():
        # the body, plus the HTTP request or response head; the packets' headers (66 bytes
        # each, taken off) would add more than 4096 bytes: 16 MiB take hundreds of packets
        assert SIZE <= payload <= SIZE + 4096, (direction, payload)
