"""The quick benchmark campaign runs end to end: every run verified, a report written.

Drives the real entry point (`python -m benchmarks run configs/benchmarks/quick.toml`)
against the live stack it starts itself (ghga-cli serve + embedded SeaweedFS, nginx).
Needs ghga-cli, curl, s5cmd, aria2c, awscrt and nginx; takes 1-3 minutes on two cores.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QUICK = REPO / "configs" / "benchmarks" / "quick.toml"


@pytest.mark.timeout(420)
def test_quick_campaign(tmp_path):
    results, work = tmp_path / "results", tmp_path / "work"
    cmd = [
        sys.executable,
        "-m",
        "benchmarks",
        "run",
        str(QUICK),
        "--results",
        str(results),
        "--work-dir",
        str(work),
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    from benchmarks.config import load

    expected = {spec.key for spec in load(QUICK, results_dir=results, work_dir=work).runs}
    files = {p.stem: json.loads(p.read_text()) for p in (results / "runs").glob("*.json")}
    assert set(files) == expected
    # warm_up: after each backend start, its first run went once unrecorded first
    warmed = {
        line.split("warm-up: ")[1].split()[0]
        for line in proc.stderr.splitlines()
        if "warm-up: " in line
    }
    assert {key.split("__")[0] for key in warmed} == {"seaweedfs", "nginx"}, proc.stderr[-3000:]
    assert warmed <= expected
    for key, run in files.items():
        assert run["verified"] is True, (key, run["error_messages"])
        assert run["errors"] == 0, key
        assert run["seconds"] > 0 and run["mb_per_s"] > 0, key
        assert 0 < run["client_peak_rss_mb"] < 2000, key
        assert run["client_cpu_seconds"] >= 0 and run["server_cpu_seconds"] >= 0, key
        assert 0 <= run["client_sys_seconds"] <= run["client_cpu_seconds"], key
        assert sum(run["cpu_busy_seconds"].values()) > 0, key
        by_process = run["server_cpu_by_process"]  # the server CPU, split by process name
        assert by_process and sum(by_process.values()) == pytest.approx(
            run["server_cpu_seconds"], abs=0.01
        ), (key, by_process)
        # memory of the run's size was written and freed just before it (settle_memory)
        assert run["memory_settled_bytes"] == run["size"] * run["files"] * run["clients"], key
        if run["tool_kind"] == "ghga-cli":  # a Python process: never 0.00 s
            assert run["client_cpu_seconds"] > 0.05, key
            counts = run["ghga_cli_counts"]  # what its --json said, summed over files
            assert counts["parts"] >= run["files"] * run["clients"], (key, counts)
            assert counts["url_refreshes"] >= 0 and counts["bytes_resent"] >= 0, (key, counts)
        else:
            assert run["ghga_cli_counts"] is None, key
    tools = {run["tool_kind"] for run in files.values()}
    assert {"ghga-cli", "curl", "s5cmd", "aria2c", "s3transfer-crt"} <= tools
    killed = [run for run in files.values() if run["tool"] == "ghga-cli-killed"]
    assert {run["direction"] for run in killed} == {"download", "upload"}
    for run in killed:  # killed halfway, then resumed: the half on disk was not sent again
        kill = run["kill"]
        assert kill["killed_after_seconds"] > 0, kill
        assert kill["ledger_bytes_at_kill"] >= run["size"] // 2, kill
        assert kill["bytes_resumed"] >= kill["ledger_bytes_at_kill"] - 16 * 2**20, kill
    many = {key: run for key, run in files.items() if run["files"] > 1}
    assert {(r["direction"], r["tool"]) for r in many.values()} == {
        (d, t) for d in ("download", "upload") for t in ("ghga-cli", "ghga-cli-loop", "s5cmd")
    }
    for run in many.values():  # the aggregate rate counts every file
        assert run["mb_per_s"] == pytest.approx(4 * run["size"] / run["seconds"] / 1e6, rel=0.01)

    machine = json.loads((results / "machine.json").read_text())
    assert machine["cpus"] and machine["tools"]
    # the version of the sources the runs used (PYTHONPATH), not of what is installed
    assert machine["tools"]["ghga-cli"].startswith("ghga-cli, version"), machine["tools"]
    report = (results / "report" / "REPORT.md").read_text()
    assert "## Goals" in report and "ghga-cli" in report
    assert "## Many files" in report and "## Killed halfway and resumed" in report
    assert "ghga-cli-killed" not in "".join(row for row in report.splitlines() if "≥" in row)
    assert "many files: ≥ 1.0× s5cmd | seaweedfs download 4 × 16MiB" in report
    rows = list(csv.DictReader(open(results / "report" / "results.csv")))
    assert len(rows) == len(expected)
    assert list((results / "report").glob("*.png"))

    # resumable: a second run finds everything done and runs nothing
    before = {p.name: p.stat().st_mtime_ns for p in (results / "runs").glob("*.json")}
    again = subprocess.run(
        cmd + ["--no-report"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in (results / "runs").glob("*.json")} == before
    assert "starting seaweedfs" not in again.stderr
