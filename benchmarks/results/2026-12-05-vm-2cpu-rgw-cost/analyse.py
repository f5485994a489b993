"""Per run of a campaign, per GB moved: radosgw and OSD CPU-s, the client's CPU-s (all,
system), each CPU's busy seconds, and the client namespace's TCP counters over the run
(from sampler.py's samples). Run: python3 analyse.py RESULTS_DIR SAMPLES.jsonl"""

import datetime
import glob
import json
import sys

COUNTERS = ("OutSegs", "InSegs", "TCPToZeroWindowAdv", "TCPRcvCoalesce", "TCPOFOQueue")


def main(results: str, samples_path: str) -> None:
    with open(samples_path) as fh:
        samples = [json.loads(line) for line in fh]
    rows = []
    for path in sorted(glob.glob(results + "/runs/*.json")):
        with open(path) as fh:
            run = json.load(fh)
        gb = run["size"] / 1e9
        server = run["server_cpu_by_process"]
        start = datetime.datetime.strptime(run["started"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
        end = start + run["seconds"] + 3
        before = [s for s in samples if s["t"] <= start + 1]
        after = [s for s in samples if s["t"] >= end]
        tcp = {}
        if before and after:
            a, b = before[-1]["ns"], after[0]["ns"]
            tcp = {k: round((b.get(k, 0) - a.get(k, 0)) / gb) for k in COUNTERS}
        busy = {cpu: round(s / gb, 3) for cpu, s in run["cpu_busy_seconds"].items()}
        rows.append(
            (run["tool"], run["rep"], run["mb_per_s"], round(server["radosgw"] / gb, 3))
            + (round(server.get("ceph-osd", 0) / gb, 3), round(run["client_cpu_seconds"] / gb, 3))
            + (round(run["client_sys_seconds"] / gb, 3), busy, tcp)
        )
    print("tool rep MB/s radosgw osd client client-sys busy-per-CPU client-TCP (all per GB)")
    for row in sorted(rows, key=lambda r: (r[0], r[1])):
        print(*row)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
