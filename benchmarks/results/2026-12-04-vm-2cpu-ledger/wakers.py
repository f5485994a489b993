"""For every D-state wait of a ghga-cli thread, the kernel stack that woke it: `perf script`
of sched:sched_switch (the waiter's stack) and sched:sched_waking (the waker's), summed per
pair of stacks.

    perf script -i RUN.data | python3 wakers.py
"""

import collections
import re
import sys

EVENT = re.compile(r"^\s*(\S.*?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+sched:sched_(switch|waking):\s+(.*)$")
SKIP = {"__schedule", "schedule", "io_schedule", "schedule_timeout", "io_schedule_timeout"}
WAKE_PLUMBING = ("try_to_wake", "wake_up", "__wake_up", "autoremove", "wake_page", "ttwu",
                 "default_wake", "__wake", "wake_bit", "folio_wake")

events = []
for line in sys.stdin:
    m = EVENT.match(line)
    if m:
        events.append(dict(comm=m[1], cpu=int(m[3]), t=float(m[4]), kind=m[5], rest=m[6], stack=[]))
    elif events and "kernel.kallsyms" in line:
        events[-1]["stack"].append(line.split()[1].split("+")[0])

waiting = {}
seconds = collections.Counter()
count = collections.Counter()
for e in events:
    if e["kind"] == "switch":
        m = re.search(r"prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+)", e["rest"])
        if m and m[2].startswith("D"):
            waiter = " < ".join([f for f in e["stack"] if f not in SKIP][:3])
            waiting[int(m[1])] = (e["t"], waiter)
        continue
    tid = int(re.search(r"pid=(\d+)", e["rest"])[1])
    if tid in waiting:
        t0, waiter = waiting.pop(tid)
        frames = [f for f in e["stack"] if not f.startswith(WAKE_PLUMBING)][:9]
        waker = f'{e["comm"]}[cpu{e["cpu"]}]: ' + " < ".join(frames)
        seconds[(waiter, waker)] += e["t"] - t0
        count[(waiter, waker)] += 1
for (waiter, waker), v in seconds.most_common(15):
    print(f"{v:6.3f} s {count[(waiter, waker)]:5d}x WAIT {waiter}\n      WAKER {waker}")
