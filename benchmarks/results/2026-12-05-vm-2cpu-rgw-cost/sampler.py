"""Every 2 s, one JSON line: TCP counters of the root namespace and of the client's (NETNS),
and the CPU ticks (user, system) of radosgw and ceph-osd. Run beside a campaign, on the
server CPU: taskset -c 0 python3 sampler.py NETNS OUT.jsonl"""

import json
import os
import subprocess
import sys
import time

KEEP = {
    "TCPToZeroWindowAdv", "TCPFromZeroWindowAdv", "TCPWantZeroWindowAdv", "DelayedACKs",
    "TCPRcvCoalesce", "TCPHPHits", "TCPPureAcks", "TCPHPAcks", "InSegs", "OutSegs",
    "RetransSegs", "TCPFastRetrans", "TCPLostRetransmit", "TCPOFOQueue", "TCPDSACKOldSent",
    "TCPLossProbes", "TCPSpuriousRTOs", "TCPTimeouts", "TCPBacklogCoalesce", "TCPAutoCorking",
    "TCPOrigDataSent", "TCPDelivered", "TCPRcvQDrop", "TCPBacklogDrop", "PruneCalled",
    "TCPRcvCollapsed", "TCPDSACKRecv", "TCPSACKReorder",
}  # fmt: skip
READER = (  # inside the namespace: its counters as one JSON string per line asked
    "import json, sys\n"
    "for _ in sys.stdin:\n"
    "    text = open('/proc/net/netstat').read() + open('/proc/net/snmp').read()\n"
    "    print(json.dumps(text), flush=True)\n"
)


def counters(text: str) -> dict:
    lines, got = text.split("\n"), {}
    for i in range(0, len(lines) - 1, 2):
        for key, value in zip(lines[i].split()[1:], lines[i + 1].split()[1:]):
            if key in KEEP:
                got[key] = int(value)
    return got


def ticks(name: str):
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as comm:
                if comm.read().strip() != name:
                    continue
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            return int(fields[11]), int(fields[12])
        except OSError:
            continue
    return None


def main(netns: str, out: str) -> None:
    reader = subprocess.Popen(
        ["ip", "netns", "exec", netns, "python3", "-u", "-c", READER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    with open(out, "a") as fh:
        while True:
            reader.stdin.write("x\n")
            reader.stdin.flush()
            inner = counters(json.loads(reader.stdout.readline()))
            with open("/proc/net/netstat") as a, open("/proc/net/snmp") as b:
                root = counters(a.read() + b.read())
            sample = {"t": time.time(), "ns": inner, "root": root}
            sample.update(rgw=ticks("radosgw"), osd=ticks("ceph-osd"))
            fh.write(json.dumps(sample) + "\n")
            fh.flush()
            time.sleep(2)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
