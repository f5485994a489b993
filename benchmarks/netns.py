"""The client in its own network namespace, joined to the servers by a capped veth pair.

Every address stays in 127.0.0.0/8, so pre-signed URLs (which name 127.0.0.1) work
unchanged and no traffic ever uses another range:

- namespace ``NAME``: ``lo`` stays down (so 127.0.0.1 is not local there); the veth end
  ``NAME-c`` holds 127.0.0.2/32 and a route 127.0.0.1/32 through it;
- root namespace: ``NAME-h`` has a route to 127.0.0.2 in table 4242, consulted before
  ``local`` (the ``local`` rule moves from preference 0 to 100 while the namespace
  exists; ``down()`` puts it back);
- ``route_localnet=1`` on both ends lets 127/8 cross a real link, static neighbour
  entries replace ARP, and ``tbf`` on both ends caps each direction (netem delay is not
  in this kernel);
- with ``rx_cpus`` (``[netns] rps = true`` beside ``[cpus]``), Receive Packet Steering
  processes what each end receives on its own side's CPUs, as two machines would: a veth
  otherwise hands a packet to the receiving stack on the sender's CPU, so the client's
  TCP receive work lands on the server's CPU, and the server's sending that the client's
  ACKs set off on the client's.

Several namespaces may exist at once, each with its own ``addr`` (127.0.0.2 by default):
each adds its own route and ``to ADDR`` rule, and the last one down restores ``local``.

Needs root. Clients run as ``ip netns exec NAME argv`` (exec: same PID, so wait4's
rusage is still the client's own).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Optional

TABLE = "4242"
CLIENT_ADDR = "127.0.0.2"


def _ip(*args: str, ns: str = "", check: bool = True) -> subprocess.CompletedProcess:
    argv = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=30)


HEADER_BYTES = 14 + 20 + 32  # Ethernet, IPv4, TCP with the timestamp option (Linux's default)


def capped(rate) -> bool:
    return _rate_bits(rate) > 0


def _rate_bits(rate) -> int:
    """bits/s of "1gbit", "500mbit", …; 0 for "none": no cap."""
    text = str(rate).lower().replace("bit", "")
    if text in ("none", "0", "unlimited"):
        return 0
    mult = {"k": 10**3, "m": 10**6, "g": 10**9}.get(text[-1:], 1)
    return int(float(text.rstrip("kmg")) * mult)


class Netns:
    def __init__(
        self,
        name: str = "ghgab",
        rate: str = "1gbit",
        mtu: int = 1500,
        addr: str = CLIENT_ADDR,
        rx_cpus: Optional[tuple[str, str]] = None,
    ):
        """rx_cpus: (server side, client side) kernel CPU masks for Receive Packet Steering."""
        self.name, self.rate, self.mtu, self.addr = name, rate, int(mtu), addr
        self.host, self.peer = f"{name}-h", f"{name}-c"
        self.rx_cpus = rx_cpus

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def payload_bytes(self) -> dict:
        """TCP payload (HTTP headers and bodies) that crossed the veth so far: {"download": to
        the client, "upload": from it}. The veth counts bytes and packets; each packet it
        counts carries one Ethernet, IPv4 and TCP header (with timestamps), also when the
        stack sent it as one large GSO packet, so those are taken off per packet."""
        stats = Path(f"/sys/class/net/{self.host}/statistics")

        def counter(name: str) -> int:
            return int((stats / name).read_text())

        return {
            "download": counter("tx_bytes") - HEADER_BYTES * counter("tx_packets"),
            "upload": counter("rx_bytes") - HEADER_BYTES * counter("rx_packets"),
        }

    def facts(self) -> dict:
        facts = {"netns": self.name, "rate": self.rate, "mtu": self.mtu}
        if self.rx_cpus:
            facts["rps"] = {"server": self.rx_cpus[0], "client": self.rx_cpus[1]}
        return facts

    def up(self) -> None:
        self.down()  # leftovers of a killed campaign
        ns, h, c = self.name, self.host, self.peer
        rate_bits = _rate_bits(self.rate)
        burst = max(rate_bits // 8 // 100, 64 * 1024)  # 10 ms at the rate
        _ip("ip", "netns", "add", ns)
        _ip(
            "ip",
            "link",
            "add",
            h,
            "mtu",
            str(self.mtu),
            "type",
            "veth",
            "peer",
            "name",
            c,
            "mtu",
            str(self.mtu),
        )
        _ip("ip", "link", "set", c, "netns", ns)
        mac_h = Path(f"/sys/class/net/{h}/address").read_text().strip()
        mac_c = _ip("cat", f"/sys/class/net/{c}/address", ns=ns).stdout.strip()
        _ip("ip", "link", "set", h, "up")
        _ip(
            "sysctl", "-qw", f"net.ipv4.conf.{h}.route_localnet=1", f"net.ipv4.conf.{h}.rp_filter=0"
        )
        _ip(
            "ip",
            "route",
            "replace",
            f"{self.addr}/32",
            "dev",
            h,
            "src",
            "127.0.0.1",
            "table",
            TABLE,
        )
        if _local_at(0):  # the first namespace up moves ``local`` behind the client rules
            _ip("ip", "rule", "add", "pref", "100", "lookup", "local")
            _ip("ip", "rule", "del", "pref", "0")
        _ip("ip", "rule", "add", "pref", "10", "to", self.addr, "lookup", TABLE)
        _ip("ip", "neigh", "replace", self.addr, "lladdr", mac_c, "dev", h, "nud", "permanent")
        _ip("ip", "link", "set", c, "up", ns=ns)
        _ip(
            "sysctl",
            "-qw",
            f"net.ipv4.conf.{c}.route_localnet=1",
            "net.ipv4.conf.all.rp_filter=0",
            f"net.ipv4.conf.{c}.rp_filter=0",
            ns=ns,
        )
        _ip("ip", "addr", "add", f"{self.addr}/32", "dev", c, ns=ns)
        _ip("ip", "route", "add", "127.0.0.1/32", "dev", c, "src", self.addr, ns=ns)
        _ip(
            "ip",
            "neigh",
            "replace",
            "127.0.0.1",
            "lladdr",
            mac_h,
            "dev",
            c,
            "nud",
            "permanent",
            ns=ns,
        )
        if self.rx_cpus:
            for dev, where, mask in ((h, "", self.rx_cpus[0]), (c, ns, self.rx_cpus[1])):
                rps = f"/sys/class/net/{dev}/queues/rx-0/rps_cpus"
                _ip("sh", "-c", f"echo {mask} > {rps}", ns=where)
        for dev, where in ((h, ""), (c, ns)) if rate_bits else ():
            _ip(
                "tc",
                "qdisc",
                "replace",
                "dev",
                dev,
                "root",
                "tbf",
                "rate",
                str(rate_bits),
                "burst",
                str(burst),
                "latency",
                "50ms",
                ns=where,
            )

    def down(self) -> None:
        _ip("ip", "netns", "del", self.name, check=False)
        _ip("ip", "link", "del", self.host, check=False)
        if f"to {self.addr} lookup {TABLE}" in _ip("ip", "rule", "show", check=False).stdout:
            _ip("ip", "rule", "del", "pref", "10", "to", self.addr, "lookup", TABLE, check=False)
        _ip("ip", "route", "del", f"{self.addr}/32", "table", TABLE, check=False)
        rules = _ip("ip", "rule", "show", check=False).stdout
        if f"lookup {TABLE}" in rules:
            return  # another namespace is still up
        if not _local_at(0):
            _ip("ip", "rule", "add", "pref", "0", "lookup", "local", check=False)
        if _local_at(100):
            _ip("ip", "rule", "del", "pref", "100", check=False)
        _ip("ip", "route", "flush", "table", TABLE, check=False)


def _local_at(pref: int) -> bool:
    rules = _ip("ip", "rule", "show", check=False).stdout.splitlines()
    return any(line.startswith(f"{pref}:") and "lookup local" in line for line in rules)
