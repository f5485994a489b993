"""Per client run, what watch.sh saw: CPU time by kind on each CPU, and the client's
zero-window advertisements and ACKs (segments it sent). Usage: python3 an.py WATCH_DIR"""

import os
import sys

d = sys.argv[1]


def stat(p):
    r = {}
    for line in open(p):
        if line.startswith("cpu") and line[3].isdigit():
            f = line.split()
            r[f[0]] = list(map(int, f[1:9]))
    return r


def nst(p):
    r = {}
    for line in open(p):
        f = line.split()
        if len(f) >= 2 and f[1].isdigit():
            r[f[0]] = int(f[1])
    return r


n = 1
while os.path.exists(f"{d}/{n}.end.t"):
    cmd = open(f"{d}/{n}.cmd").read().split("\n")[0]
    tool = "s5cmd" if "s5cmd" in cmd else "ghga"
    t = float(open(f"{d}/{n}.end.t").read()) - float(open(f"{d}/{n}.start.t").read())
    sa, sb = stat(f"{d}/{n}.start.stat"), stat(f"{d}/{n}.end.stat")
    out = []
    for c in ("cpu0", "cpu1"):
        dd = [(y - x) / 100 for x, y in zip(sa[c], sb[c])]
        out.append(
            f"{c} us {dd[0]:.1f} sy {dd[2]:.1f} id {dd[3]:.1f} io {dd[4]:.1f} si {dd[6]:.1f}"
        )
    a, b = nst(f"{d}/{n}.start.netns"), nst(f"{d}/{n}.end.netns")
    z = b["TcpExtTCPToZeroWindowAdv"] - a["TcpExtTCPToZeroWindowAdv"]
    o = b["TcpOutSegs"] - a["TcpOutSegs"]
    print(n, tool, f"{t:.1f}s", " | ".join(out), "zerownd", z, "acks", o)
    n += 1
