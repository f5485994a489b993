"""A harness stopped (SIGTERM) while it starts Ceph leaves no daemon behind: `start_ceph`
stops what the script had started when it is interrupted, not only when the script fails.
A real bootstrap in a child process, interrupted once its monitor runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.backends.ceph import ceph_installed
from benchmarks.paths import REPO

# the harness maps SIGTERM to KeyboardInterrupt (benchmarks/campaign.py) the same way
CHILD = """
import signal, sys
signal.signal(signal.SIGTERM, signal.default_int_handler)
from benchmarks.backends.ceph import start_ceph
start_ceph(sys.argv[1], timeout=300)
print("started", flush=True)
signal.pause()
"""


def daemons_of(cluster_dir: Path) -> list[int]:
    """PIDs of processes started with `-c DIR/ceph.conf` (how the script tells its own)."""
    conf = str(cluster_dir / "ceph.conf").encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if conf in argv:
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(
    not ceph_installed() and os.geteuid() != 0, reason="Ceph is not installed (needs root)"
)
def test_sigterm_during_start_leaves_no_daemon(tmp_path):
    cluster_dir = tmp_path / "ceph"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(cluster_dir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 600  # generous: a bound, not a speed check
        while monitor_pid(cluster_dir) not in daemons_of(cluster_dir):
            assert child.poll() is None, f"the start ended first: {child.communicate()}"
            assert time.monotonic() < deadline, "the monitor did not start in 600 s"
            time.sleep(0.2)
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert "started" not in out  # interrupted while starting, as intended
    assert child.returncode != 0
    assert "KeyboardInterrupt" in err
    # one-shot tools the script ran (mkfs, radosgw-admin) end by themselves; daemons do not
    deadline = time.monotonic() + 120
    while daemons_of(cluster_dir) and time.monotonic() < deadline:
        time.sleep(1)
    assert daemons_of(cluster_dir) == [], "daemons outlived the interrupted start"


def monitor_pid(cluster_dir: Path) -> int:
    """The monitor's PID once the script has launched it (its pid file), else 0."""
    try:
        return int((cluster_dir / "run" / "mon.pid").read_text())
    except (OSError, ValueError):
        return 0
