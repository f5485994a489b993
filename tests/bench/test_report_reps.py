"""The report over repetitions: medians, the min–max spread, errors counted over all runs."""

from __future__ import annotations

import json

from benchmarks.report import write_report
from ghga_tasks.units import GiB


def run(tool, kind, rep, mb_per_s, verified=True, connections=None):
    key = f"seaweedfs__download__1GiB__{tool}__c1__r{rep}"
    return {
        "key": key,
        "order": rep,
        "backend": "seaweedfs",
        "api": "ghga",
        "direction": "download",
        "size": GiB,
        "size_label": "1GiB",
        "tool": tool,
        "tool_kind": kind,
        "connections": connections,
        "clients": 1,
        "rep": rep,
        "started": "2026-11-24T06:00:00",
        "seconds": round(GiB / mb_per_s / 1e6, 3),
        "mb_per_s": mb_per_s,
        "per_client_mb_per_s": mb_per_s,
        "client_seconds": [1.0],
        "client_cpu_seconds": 2.0,
        "client_peak_rss_mb": 89.0,
        "server_cpu_seconds": 3.0,
        "errors": 0 if verified else 1,
        "error_messages": [] if verified else ["client 0: rc=1"],
        "verified": verified,
        "content": "random",
        "netns": None,
    }


def test_medians_spread_and_errors_over_repetitions(tmp_path):
    runs = [
        run("ghga-cli", "ghga-cli", 1, 300.0, connections=4),
        run("ghga-cli", "ghga-cli", 2, 360.0, connections=4),
        run("ghga-cli", "ghga-cli", 3, 100.0, verified=False, connections=4),
        run("s5cmd", "s5cmd", 1, 400.0),
        run("s5cmd", "s5cmd", 2, 440.0),
    ]
    (tmp_path / "runs").mkdir()
    for r in runs:
        (tmp_path / "runs" / f"{r['key']}.json").write_text(json.dumps(r))
    report = write_report(tmp_path).read_text()
    ghga = next(
        line for line in report.splitlines() if line.startswith("| download | 1GiB | ghga-cli |")
    )
    cells = [c.strip() for c in ghga.strip("|").split("|")]
    # median and spread of the two verified runs; the failed third counts as an error
    assert cells[5] == "330.0" and cells[6] == "300.0–360.0" and cells[-1] == "1 / 3", cells
    s5 = next(
        line for line in report.splitlines() if line.startswith("| download | 1GiB | s5cmd |")
    )
    assert [c.strip() for c in s5.strip("|").split("|")][6] == "400.0–440.0"
    # the goal's ratio is median over median: 330 / 420
    goal = next(line for line in report.splitlines() if "best peer" in line)
    assert "| 0.79 |" in goal and "MISS" in goal
    assert "seaweedfs__download__1GiB__ghga-cli__c1__r3" in report  # listed under errors


def test_the_client_network_line_says_whether_each_side_received_on_its_cpus(tmp_path):
    (tmp_path / "runs").mkdir()
    for rep, rps in ((1, {"server": "1", "client": "2"}), (2, None)):
        r = run("s5cmd", "s5cmd", rep, 400.0)
        r["netns"] = {"netns": "ghgas", "rate": "none", "mtu": 1500}
        if rps:
            r["netns"]["rps"] = rps
        (tmp_path / "runs" / f"{r['key']}.json").write_text(json.dumps(r))
    report = write_report(tmp_path).read_text()
    line = next(line for line in report.splitlines() if "client network" in line)
    assert "namespace ghgas, veth uncapped, MTU 1500, each side receiving on its own CPUs" in line
    assert line.count("namespace ghgas") == 2  # the run without steering is listed too
