#!/bin/bash
# profile every CPU for 25 s once a client download process appears; per run
n=0
while [ $n -lt 5 ]; do
  pid=$(pgrep -f "ghga-cli download-by-id|s5cmd --endpoint-url" | head -1)
  if [ -n "$pid" ]; then
    tool=$(grep -q s5cmd /proc/$pid/cmdline 2>/dev/null && echo s5cmd || echo ghga-cli)
    n=$((n+1)); sleep 8
    taskset -c 0 perf record -a -F 499 -o /tmp/rgw/prof/$tool-$n.data -- sleep 25 > /tmp/rgw/prof/$tool-$n.log 2>&1
    while pgrep -f "ghga-cli download-by-id|s5cmd --endpoint-url" > /dev/null; do sleep 1; done
  fi
  sleep 1
done
