"""The client's threads in D state (processes in the netns ghgau), sampled every 0.1 s,
with the top of their kernel stacks. Usage: python3 dsample.py OUT SECONDS (root)."""

import collections
import os
import sys
import time

out, dur = sys.argv[1], float(sys.argv[2])
ns = os.stat("/run/netns/ghgau").st_ino
count = collections.Counter()
samples = 0
end = time.time() + dur
while time.time() < end:
    pids = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.stat(f"/proc/{p}/ns/net").st_ino == ns:
                    pids.append(p)
            except OSError:
                pass
    if pids:
        samples += 1
    for p in pids:
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                st = open(f"/proc/{p}/task/{t}/stat").read()
                if st[st.rindex(")") + 2] != "D":
                    continue
                comm = open(f"/proc/{p}/task/{t}/comm").read().strip()
                stack = [
                    entry.split()[1].split("+")[0]
                    for entry in open(f"/proc/{p}/task/{t}/stack").read().splitlines()[:10]
                ]
                count[(comm, " < ".join(stack))] += 1
            except (OSError, ValueError, IndexError):
                pass
    time.sleep(0.1)
with open(out, "w") as f:
    print("samples with a client", samples, file=f)
    for k, v in count.most_common(40):
        print(v, k[0], k[1], file=f)
