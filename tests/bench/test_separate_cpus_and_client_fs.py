"""The huge campaign's machinery: servers and clients on separate CPUs, and the client's
files on a compressing btrfs loop file holding compressible sources."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

import pytest

from benchmarks.clientfs import ClientFs
from benchmarks.config import load
from benchmarks.cpus import CpuSplit, cpumask, parse_cpu_list
from benchmarks.files import BLOCK, source_file
from benchmarks.paths import REPO


def test_cpu_lists_and_masks():
    assert cpumask({0}) == "1" and cpumask({0, 1}) == "3"
    assert cpumask({0, 33}) == "2,00000001"  # the kernel's 32-bit groups
    assert parse_cpu_list("0") == {0}
    assert parse_cpu_list("0-2,5") == {0, 1, 2, 5}
    for bad in ("", "2-1", "-1", "a", "0,,x"):
        with pytest.raises(ValueError):
            parse_cpu_list(bad)


def test_overlapping_or_missing_cpus_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        CpuSplit.from_config({"servers": "0", "clients": "0"})
    with pytest.raises(ValueError, match="may not use"):
        CpuSplit.from_config({"servers": "0", "clients": "4095"})
    assert CpuSplit.from_config({"enabled": False, "servers": "0", "clients": "1"}) is None


def test_rps_needs_the_cpu_split(tmp_path):
    """[netns] rps steers received packets to each side's CPUs: without [cpus] there are none."""
    base = (REPO / "configs" / "benchmarks" / "quick.toml").read_text()
    toml = tmp_path / "c.toml"
    toml.write_text(base + '\n[netns]\nname = "ghgaq"\nrate = "none"\nrps = true\n')
    with pytest.raises(ValueError, match=r"rps = true needs \[cpus\]"):
        load(toml, results_dir=tmp_path / "r", work_dir=tmp_path / "w")
    toml.write_text(toml.read_text() + '\n[cpus]\nservers = "0"\nclients = "1"\n')
    camp = load(toml, results_dir=tmp_path / "r", work_dir=tmp_path / "w")
    assert camp.netns["rps"] is True and camp.cpus == {"servers": "0", "clients": "1"}
    assert CpuSplit("0", "1").masks() == ("1", "2")


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_servers_inherit_the_harness_cpus_and_clients_run_under_taskset(tmp_path):
    """In a child interpreter (pinning is process-wide): after pin_harness() a process it
    starts runs on the server CPUs only; a client under client_prefix() on the client CPUs."""
    cpus = sorted(os.sched_getaffinity(0))
    servers, clients = str(cpus[0]), str(cpus[1])
    code = f"""
import os, subprocess, sys
from benchmarks.cpus import CpuSplit, allowed_cpus
split = CpuSplit.from_config({{"servers": "{servers}", "clients": "{clients}"}})
split.pin_harness()
server = subprocess.Popen(["sleep", "30"])
client = subprocess.Popen(split.client_prefix() + ["sleep", "30"])
try:
    import time
    for _ in range(100):  # taskset execs sleep: wait until it did
        if open(f"/proc/{{client.pid}}/comm").read().strip() == "sleep":
            break
        time.sleep(0.05)
    print(allowed_cpus(server.pid), allowed_cpus(client.pid))
    print(split.facts([server.pid])["server_pids_allowed"])
    with split.everywhere(lambda: [server.pid]):  # seeding: servers on every CPU meanwhile
        print(allowed_cpus(server.pid), sorted(os.sched_getaffinity(0)))
    print(allowed_cpus(server.pid), sorted(os.sched_getaffinity(0)))
finally:
    server.kill(); client.kill(); server.wait(); client.wait()
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split("\n")
    assert out[0] == f"{servers} {clients}"
    assert out[1] == f"['{servers}']"
    both = sorted({cpus[0], cpus[1]})
    assert out[2] == f"{both[0]},{both[1]} {both}" or out[2] == f"{both[0]}-{both[1]} {both}"
    assert out[3] == f"{servers} [{servers}]"  # pinned back before any clock starts
    assert os.sched_getaffinity(0) == set(cpus)  # pinning stayed in the child interpreter


def test_compressible_source_has_unique_blocks(tmp_path):
    path, sha = source_file(tmp_path, 3 * BLOCK + 4096 + 17, "compressible")
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha
    blocks = [data[i : i + 4096] for i in range(0, len(data) - 4096, 4096)]
    assert len(set(blocks)) == len(blocks)  # a misplaced range changes the SHA-256
    again, sha_again = source_file(tmp_path / "again", len(data), "compressible")
    assert sha_again == sha  # the same bytes every time


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_client_fs_holds_compressible_files_compressed(tmp_path):
    if shutil.which("mkfs.btrfs") is None:
        pytest.fail("mkfs.btrfs is missing: tests/run installs btrfs-progs")
    fs = ClientFs.from_config({"size": "2G"}, tmp_path)
    fs.up()
    try:
        fs.up()  # mounted already: nothing to do
        path, sha = source_file(fs.mountpoint / "files", 256 * BLOCK, "compressible")
        os.sync()
        facts = fs.facts()
        assert facts["compress"] == "compress-force=zstd:1"
        # 256 MiB written; the image grew by a small fraction of that
        assert facts["image_on_disk"] < 64 * BLOCK, facts
        with open(path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == sha
    finally:
        fs.down()
    assert not (fs.mountpoint / "files").exists()  # unmounted: the files are in the image
    fs.up()
    try:
        assert path.exists()
    finally:
        fs.down()


def test_client_counts_sum_single_runs_and_take_a_batch_summary(tmp_path):
    from benchmarks.client_reports import client_counts

    single = tmp_path / "single"  # a loop: one line per process
    single.write_text(
        '{"file_id": "a", "parts": 3, "url_refreshes": 1, "bytes_resent": 5,'
        ' "transfer_seconds": 2.5}\n'
        "not json\n"
        '{"file_id": "b", "parts": 2, "url_refreshes": 0, "bytes_resent": 0}\n'
    )
    batch = tmp_path / "batch"  # per-file lines, then the summary of them all
    batch.write_text(
        '{"file_id": "c", "parts": 4, "url_refreshes": 2, "bytes_resent": 7}\n'
        '{"file_id": "d", "error": "x", "exit_code": 69}\n'
        '{"summary": true, "parts": 4, "url_refreshes": 2, "bytes_resent": 7}\n'
    )
    assert client_counts([single, batch, tmp_path / "killed-printed-nothing"]) == {
        "parts": 9,
        "url_refreshes": 3,
        "bytes_resent": 12,
        "transfer_seconds": 2.5,
    }
