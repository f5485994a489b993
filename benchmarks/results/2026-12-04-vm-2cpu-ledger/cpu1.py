"""CPU 1's (the client's) user, system, idle and iowait seconds per client run, from the
/proc/stat snapshots offcpu.sh takes at a run's start and end.

    python3 cpu1.py DIR
"""

import os
import sys

directory = sys.argv[1]


def cpu1(path):
    for line in open(path):
        if line.startswith("cpu1 "):
            return [int(x) for x in line.split()[1:]]


n = 1
while os.path.exists(f"{directory}/{n}.end.stat"):
    a, b = cpu1(f"{directory}/{n}.start.stat"), cpu1(f"{directory}/{n}.end.stat")
    d = [(y - x) / os.sysconf("SC_CLK_TCK") for x, y in zip(a, b)]
    tool = "s5cmd" if "s5cmd" in open(f"{directory}/{n}.cmd").read() else "ghga-cli"
    print(f"{n:2d} {tool:9s} user {d[0]:5.1f} sys {d[2]:5.1f} idle {d[3]:5.1f} "
          f"iowait {d[4]:4.1f} irq+softirq {d[5] + d[6]:4.1f}")
    n += 1
