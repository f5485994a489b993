#!/bin/bash
# Per client run in the harness's netns ghgau: /proc/stat at its start and end and, 10 s in,
# 20 s of ghga-cli's context switches and wake-ups with kernel stacks (perf).
# Usage (root): offcpu.sh OUT (touch OUT/noperf: counters only; OUT/stop ends it).
out=$1; mkdir -p "$out"; n=0
while [ ! -e "$out/stop" ]; do
  if [ -n "$(ip netns pids ghgau 2>/dev/null)" ]; then
    n=$((n+1)); sleep 1
    for p in $(ip netns pids ghgau); do tr '\0' ' ' < /proc/$p/cmdline; echo; tr '\0' '\n' < /proc/$p/environ | grep '^PYTHONPATH='; done > "$out/$n.cmd"
    cat /proc/stat > "$out/$n.start.stat"; cat /proc/meminfo > "$out/$n.start.meminfo"
    sleep 9
    if grep -q ghga-cli "$out/$n.cmd" && [ ! -e "$out/noperf" ]; then
      cat /proc/meminfo > "$out/$n.mid.meminfo"
      perf record -q -a -e sched:sched_switch --filter 'prev_comm == "ghga-cli" || next_comm == "ghga-cli"' -e sched:sched_waking --filter 'comm == "ghga-cli"' -g -o "$out/$n.data" -- sleep 20 2>/dev/null
    fi
    while [ -n "$(ip netns pids ghgau 2>/dev/null)" ]; do sleep 0.5; done
    cat /proc/stat > "$out/$n.end.stat"
  fi
  sleep 0.5
done
