"""Off-CPU time by kernel stack, from `perf script` of sched:sched_switch events with call
graphs: for every thread switched out, the time until it is switched in again, summed per
state and, for D (uninterruptible, mostly I/O) waits, per stack.

    perf script -i RUN.data | python3 offcpu.py
"""

import collections
import re
import sys

SKIP = {"__schedule", "schedule", "io_schedule", "schedule_timeout", "io_schedule_timeout",
        "schedule_preempt_disabled", "schedule_hrtimeout_range_clock", "bit_wait_io",
        "__wait_on_bit"}
KERNEL_THREADS = ("kworker", "ksoftirq", "migration", "rcu", "cpuhp", "swapper")
SWITCH = re.compile(
    r"^\s*(\S.*?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+sched:sched_switch:\s+prev_comm=(.*?) "
    r"prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+)"
)

events = []
for line in sys.stdin:
    m = SWITCH.match(line)
    if m:
        events.append([float(m[4]), m[5], int(m[6]), m[7], int(m[9]), []])
    elif events and "kernel.kallsyms" in line:
        events[-1][5].append(line.split()[1].split("+")[0])

away = {}
by_state = collections.Counter()
by_stack = collections.Counter()
waits = collections.Counter()
for t, comm, pid, state, next_pid, stack in events:
    if next_pid in away:
        t0, who, st, key = away.pop(next_pid)
        by_state[(who, st)] += t - t0
        if st.startswith("D"):
            by_stack[(who, key)] += t - t0
            waits[(who, key)] += 1
    if pid != 0 and not comm.startswith(KERNEL_THREADS):
        away[pid] = (t, comm, state, " < ".join([f for f in stack if f not in SKIP][:9]))

print(f"span {events[-1][0] - events[0][0]:.1f} s, {len(events)} switches")
for (who, st), v in sorted(by_state.items(), key=lambda x: -x[1])[:12]:
    print(f"  {who:16s} state {st:3s} off-CPU {v:7.2f} s")
print("D-state time by stack:")
for (who, key), v in by_stack.most_common(12):
    print(f"{v:7.3f} s {waits[(who, key)]:6d}x {who}: {key}")
