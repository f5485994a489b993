"""The client namespace's byte accounting, which measures what a killed transfer had moved:
the TCP payload that crossed the capped veth, per direction, to within the HTTP headers and
the segments TCP sent again (a tail-loss probe on a slow machine re-sends up to 64 KiB)."""

from __future__ import annotations

import http.server
import os
import secrets
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from benchmarks.netns import HEADER_BYTES, Netns

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


def _scratch_netns(prefix: str, **options) -> Netns:
    """A namespace of this test's own: a random name and client address, so that it never
    meets a campaign's (or another test's) namespace."""
    octets = [secrets.randbelow(150) + 100, secrets.randbelow(254) + 1]
    addr = "127.{}.{}.2".format(*octets)
    return Netns(name=f"{prefix}{secrets.token_hex(3)}", addr=addr, **options)


def _retransmitted_segments(prefix: list[str]) -> int:
    """Tcp RetransSegs of a network namespace (prefix [] for this one, the server's)."""
    snmp = subprocess.run(
        prefix + ["cat", "/proc/net/snmp"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    names, values = [line.split() for line in snmp.splitlines() if line.startswith("Tcp:")]
    return int(values[names.index("RetransSegs")])


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_payload_bytes_count_bodies_not_packet_headers(tmp_path):
    _Handler.body = secrets.token_bytes(SIZE)
    (tmp_path / "up").write_bytes(_Handler.body)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/blob"
    ns = _scratch_netns("gpl", rate="1gbit")
    ns.up()
    try:
        moved, resent = {}, {}
        for direction, args, sender in (
            ("download", ["-o", str(tmp_path / "down")], []),
            ("upload", ["-T", str(tmp_path / "up"), "-o", "/dev/null"], ns.prefix()),
        ):
            before = ns.payload_bytes()[direction]
            resent_before = _retransmitted_segments(sender)
            subprocess.run(
                ns.prefix() + ["curl", "-sS", "--fail", *args, url], check=True, timeout=120
            )
            moved[direction] = ns.payload_bytes()[direction] - before
            resent[direction] = _retransmitted_segments(sender) - resent_before
    finally:
        ns.down()
        server.shutdown()
    assert (tmp_path / "down").read_bytes() == _Handler.body
    segment = ns.mtu - (HEADER_BYTES - 14)  # payload of a full segment: the MTU less IP and TCP
    for direction, payload in moved.items():
        # the body, the HTTP request or response head and whatever TCP sent again (it
        # crossed the link twice); the packets' headers (66 bytes each, taken off) would add
        # more than 4096 bytes: 16 MiB take hundreds of packets
        again = resent[direction] * segment
        assert SIZE <= payload <= SIZE + 4096 + again, (direction, payload, again)


def _rps_wakeups() -> list[int]:
    """Per CPU, how often another CPU handed it received packets (softnet_stat's tenth
    column); without Receive Packet Steering on some device it never grows."""
    with open("/proc/net/softnet_stat") as stat:
        return [int(line.split()[9], 16) for line in stat]


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
@pytest.mark.skipif(not {0, 1} <= os.sched_getaffinity(0), reason="needs CPUs 0 and 1")
def test_rps_hands_what_the_client_receives_to_the_client_cpus(tmp_path):
    """rx_cpus: the server end's packets (server on CPU 0) are received on CPU 1, the
    client's, as on a machine of its own; the masks are in the facts; bytes arrive intact."""
    body = secrets.token_bytes(SIZE)
    (tmp_path / "blob").write_bytes(body)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "http.server", "--bind", "127.0.0.1"]
        + ["--directory", str(tmp_path), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ns = _scratch_netns("gps", rate="none", rx_cpus=("1", "2"))  # servers CPU 0, client 1
    ns.up()
    try:
        steering = [
            Path(f"/sys/class/net/{ns.host}/queues/rx-0/rps_cpus").read_text(),
            subprocess.run(
                ns.prefix() + ["cat", f"/sys/class/net/{ns.peer}/queues/rx-0/rps_cpus"],
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            ).stdout,
        ]
        before = _rps_wakeups()
        curl = ns.prefix() + ["taskset", "-c", "1", "curl", "-sS", "--fail"]
        curl += ["--retry", "20", "--retry-connrefused", "--retry-delay", "1"]
        out = tmp_path / "down"
        subprocess.run(
            curl + ["-o", str(out), f"http://127.0.0.1:{port}/blob"], check=True, timeout=120
        )
        after = _rps_wakeups()
    finally:
        ns.down()
        server.terminate()
        server.wait(timeout=30)
    assert out.read_bytes() == body
    assert [int(mask.strip().replace(",", ""), 16) for mask in steering] == [1, 2]
    assert after[1] > before[1]  # CPU 0 sent, CPU 1 was handed the packets
    assert ns.facts()["rps"] == {"server": "1", "client": "2"}
