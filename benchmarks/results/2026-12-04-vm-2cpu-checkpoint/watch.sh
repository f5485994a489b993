#!/bin/bash
# scratch: per client run, counters of the client's netns and the root ns, softirqs, optional perf
out=$1; perf=${2:-}; mkdir -p "$out"; n=0
snap() { ip netns exec ghgau nstat -az > "$1.netns"; nstat -az > "$1.root"; cat /proc/softirqs > "$1.softirqs"; cat /proc/stat > "$1.stat"; date +%s.%N > "$1.t"; }
while [ ! -e "$out/stop" ]; do
  pids=$(ip netns pids ghgau 2>/dev/null)
  if [ -n "$pids" ]; then
    n=$((n+1)); sleep 1
    for p in $(ip netns pids ghgau); do tr '\0' ' ' < /proc/$p/cmdline; echo; done > "$out/$n.cmd"
    snap "$out/$n.start"
    if [ -n "$perf" ]; then sleep 10; perf record -q -e cpu-clock -F 499 -a -g -o "$out/$n.perf.data" -- sleep 15 2>/dev/null; fi
    while [ -n "$(ip netns pids ghgau 2>/dev/null)" ]; do sleep 0.5; done
    snap "$out/$n.end"
  fi
  sleep 0.5
done
