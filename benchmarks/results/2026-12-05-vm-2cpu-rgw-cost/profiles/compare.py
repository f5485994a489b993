"""CPU samples per GB by thread name and symbol, ghga-cli's runs against s5cmd's.

Input: the first 300 lines of `perf report -i RUN.data -C CPU --sort comm,sym --stdio -n`
of each profile, saved as RUN.cpuCPU.txt beside this file (`perf record -a -F 499` for 25 s,
started 8 s into the run, under taskset -c 0). Samples are divided by the GB the run moved
in those 25 s (at its rate). Run: python3 compare.py [DIR]"""

import collections
import re
import sys
from pathlib import Path

HERE = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
RATES = {"ghga-cli-2": 358.6, "s5cmd-3": 376.8, "ghga-cli-4": 361.1, "s5cmd-5": 400.6}  # MB/s
GHGA, S5CMD = ["ghga-cli-2", "ghga-cli-4"], ["s5cmd-3", "s5cmd-5"]
LINE = re.compile(r"\s*[\d.]+%\s+(\d+)\s+(\S+(?: \S+)*?)\s+\[(.)\]\s+(.*)$")


def per_gb(run: str, cpu: int) -> dict:
    counts = collections.Counter()
    for line in (HERE / f"{run}.cpu{cpu}.txt").read_text().splitlines():
        m = LINE.match(line)
        if m:
            comm = re.sub(r"kworker/\S+", "kworker", m.group(2))
            counts[(comm, m.group(4).strip())] += int(m.group(1))
    gb = RATES[run] * 25 / 1000
    return {key: n / gb for key, n in counts.items()}


def mean(runs: list, key) -> float:
    return sum(r.get(key, 0) for r in runs) / len(runs)


for cpu in (0, 1):
    g, s = [per_gb(r, cpu) for r in GHGA], [per_gb(r, cpu) for r in S5CMD]
    keys = set().union(*g, *s)
    total = [sum(sum(r.values()) for r in runs) / len(runs) for runs in (g, s)]
    print(f"CPU {cpu}: samples per GB (499 Hz), ghga-cli {total[0]:.0f}, s5cmd {total[1]:.0f}")
    by_thread = collections.defaultdict(lambda: [0.0, 0.0])
    for key in keys:
        by_thread[key[0]][0] += mean(g, key)
        by_thread[key[0]][1] += mean(s, key)
    ranked = sorted(by_thread.items(), key=lambda kv: -abs(kv[1][0] - kv[1][1]))
    for name, (a, b) in ranked[:8]:
        print(f"  {name:28s} {a:7.0f} {b:7.0f} {a - b:+7.0f}")
    diffs = sorted(keys, key=lambda k: mean(s, k) - mean(g, k))
    print("  symbols with the most extra for ghga-cli (ghga-cli, s5cmd):")
    for key in diffs[:12]:
        print(f"    {key[0][:16]:16s} {key[1][:48]:48s} {mean(g, key):6.0f} {mean(s, key):6.0f}")
