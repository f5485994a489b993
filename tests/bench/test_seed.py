"""`python -m benchmarks seed` seeds a campaign's download fixtures and keeps the store; the
next `run` downloads them without seeding again. Real servers (`ghga-cli serve` with its
embedded SeaweedFS) and real ghga-cli processes, through the entry point users call."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks.fixtures import RECORD
from benchmarks.paths import REPO
from ghga_tasks.units import MiB

CONFIG = """
[campaign]
name = "seed"
repetitions = 1
run_timeout = 120
content = "random"
gc = "never"

[backends.seaweedfs]
server_args = ["--retry-after", "1"]

[[matrix]]
backends = ["seaweedfs"]
directions = ["download", "upload"]
sizes = ["32MiB"]
tools = ["ghga-cli"]
clients = [1, 2]
"""


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=400,
    )


def where(tmp_path) -> list[str]:
    return ["--results", str(tmp_path / "results"), "--work-dir", str(tmp_path / "work")]


def test_seeded_fixtures_are_kept_for_the_next_run(tmp_path):
    config, results, work = tmp_path / "seed.toml", tmp_path / "results", tmp_path / "work"
    config.write_text(CONFIG)

    seeded = bench("seed", str(config), *where(tmp_path))
    assert seeded.returncode == 0, seeded.stderr[-3000:]
    key = "seaweedfs__download__32MiB__ghga-cli__c2__r1"  # the run reading the most files
    assert seeded.stdout.splitlines() == [
        f"{key}: 2 fixtures (bench-dl-32MiB-0, bench-dl-32MiB-1)"
    ], seeded.stdout
    record = json.loads((work / "stack" / "seaweedfs" / RECORD).read_text())
    assert record["fixtures"][str(32 * MiB)]["ids"] == ["bench-dl-32MiB-0", "bench-dl-32MiB-1"]
    assert not (results / "runs").exists() or not list((results / "runs").iterdir())

    ran = bench("run", str(config), *where(tmp_path), "--only", "__download__", "--no-report")
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "using the store kept" in ran.stderr and "2 download fixtures" in ran.stderr
    assert "seeding" not in ran.stderr, ran.stderr[-3000:]
    for clients in (1, 2):
        key = f"seaweedfs__download__32MiB__ghga-cli__c{clients}__r1"
        result = json.loads((results / "runs" / f"{key}.json").read_text())
        assert result["verified"] is True and result["errors"] == 0, result["error_messages"]
    assert "(2 of 4 runs done, SUCCESS)" in ran.stdout, ran.stdout
    # uploads are left: the store stays for them
    assert (work / "stack" / "seaweedfs" / RECORD).exists()


@pytest.mark.parametrize(
    "old, new, kinds",
    [
        ('["seaweedfs"]', '["seaweedfs", "ceph"]', "ceph 32MiB, seaweedfs 32MiB"),
        ('["32MiB"]', '["32MiB", "64MiB"]', "seaweedfs 32MiB, seaweedfs 64MiB"),
    ],
)
def test_seeding_two_kinds_of_fixtures_at_once_is_refused(tmp_path, old, new, kinds):
    """A store keeps one backend's fixtures of one size: seeding a second would drop the
    first."""
    config = tmp_path / "two.toml"
    config.write_text(CONFIG.replace(old, new))
    proc = bench("seed", str(config), *where(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"seeding failed: downloads of {kinds} left: a store keeps one backend's fixtures of "
        "one size, so seed one at a time (--only)"
    )
    assert not (tmp_path / "work" / "stack").exists()  # refused before anything started


def test_nothing_to_seed_says_so(tmp_path):
    config = tmp_path / "up.toml"
    config.write_text(CONFIG.replace('["download", "upload"]', '["upload"]'))
    proc = bench("seed", str(config), *where(tmp_path))
    assert proc.returncode == 0
    assert proc.stderr.strip().splitlines()[-1] == "no download runs left to seed"
    assert proc.stdout == ""
