"""The reference server's own CPU per part-URL request (POST .../signed_urls), for one or
more checkouts of ghga_tasks, in alternating rounds.

    python api_cost.py CALLS ROUNDS SOURCES...   # e.g. 2000 3 /work/main /tmp/exp/old

Each round starts `python -m ghga_tasks serve` (embedded SeaweedFS) from each SOURCES in
turn, starts an upload attempt as writer "w1" and asks for CALLS part URLs from four
threads, as an upload with four connections does. The server process's CPU (utime + stime
from /proc; SeaweedFS is a child process and not counted) is read before and after. Then
200 more, one after the other on one kept-alive connection: the median time each took
(the round trip a prefetch waits for)."""

import json
import os
import subprocess
import sys
import threading
import time

import requests


def server_cpu(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(sources: str, calls: int) -> float:
    sources = os.path.abspath(sources)
    env = dict(os.environ, PYTHONPATH=sources)
    argv = [sys.executable, "-m", "ghga_tasks", "serve", "--register", "f1=4294967296"]
    srv = subprocess.Popen(  # in SOURCES: `-m` puts the working directory first on sys.path
        argv + ["--log-level", "warning"], stdout=subprocess.PIPE, env=env, text=True, cwd=sources
    )
    try:
        api = json.loads(srv.stdout.readline())["upload_api"]
        r = requests.post(f"{api}/uploads", json={"file_id": "f1", "writer": "w1"}, timeout=30)
        r.raise_for_status()
        upload_id = r.json()["upload_id"]

        def ask(first: int, count: int) -> None:
            with requests.Session() as s:
                for i in range(first, first + count * 4, 4):
                    url = f"{api}/uploads/{upload_id}/parts/{i % 256 + 1}/signed_urls"
                    s.post(url, json={"writer": "w1"}, timeout=30).raise_for_status()

        ask(0, 50)  # warm: imports, connections, boto's signer
        before = server_cpu(srv.pid)
        threads = [threading.Thread(target=ask, args=(k, calls // 4)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cpu = (server_cpu(srv.pid) - before) / (calls // 4 * 4)
        took = []
        with requests.Session() as s:
            for i in range(200):
                url = f"{api}/uploads/{upload_id}/parts/{i % 256 + 1}/signed_urls"
                started = time.perf_counter()
                s.post(url, json={"writer": "w1"}, timeout=30).raise_for_status()
                took.append(time.perf_counter() - started)
        return cpu, sorted(took)[len(took) // 2]
    finally:
        srv.terminate()
        srv.wait(60)


def main(calls: int, rounds: int, sources: list) -> None:
    results = {s: [] for s in sources}
    waits = {s: [] for s in sources}
    for r in range(rounds):
        for s in sources:
            cpu, wait = measure(s, calls)
            results[s].append(1000 * cpu)
            waits[s].append(1000 * wait)
            print(
                f"round {r + 1}: {s}: {1000 * cpu:.2f} server CPU-ms per part URL, "
                f"{1000 * wait:.2f} ms per request one after the other",
                flush=True,
            )
    for s, values in results.items():
        each = ", ".join(f"{v:.2f}" for v in values)
        print(f"{s}: median {sorted(values)[len(values) // 2]:.2f} CPU-ms ({each})")
        each = ", ".join(f"{v:.2f}" for v in waits[s])
        print(f"{s}: median {sorted(waits[s])[len(waits[s]) // 2]:.2f} ms a request ({each})")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
