"""`ghga-cli serve` failing to start: one error line after the log, a documented exit code
(ghga_tasks/server/README.md), nothing on stdout, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")


def serve(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHGA_")}
    return subprocess.run(
        [sys.executable, "-m", "ghga_tasks", "serve", "--port", "0", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def error_line(proc: subprocess.CompletedProcess, code: int, *words: str) -> str:
    """Exit `code`, stdout empty (it carries only the ready line), exactly one error line."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert proc.stdout == "", proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [
        line for line in proc.stderr.splitlines() if line.startswith("ghga-cli serve: error: ")
    ]
    assert len(errors) == 1, proc.stderr
    for word in words:
        assert word in errors[0], (word, errors[0])
    return errors[0]


def fake_weed(tmp_path: Path, script: str) -> str:
    path = tmp_path / "weed"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return str(path)


def test_seaweedfs_exiting_at_once_is_69(tmp_path):
    error_line(
        serve("--weed", "/bin/false", "--data-dir", str(tmp_path / "d")),
        69,
        "SeaweedFS (/bin/false) did not start",
        "it logged nothing",
    )


def test_seaweedfs_failing_says_its_last_log_line(tmp_path):
    weed = fake_weed(tmp_path, "echo 'starting'\necho 'F1201 fatal: no disk for volumes'\nexit 3\n")
    line = error_line(
        serve("--weed", weed, "--data-dir", str(tmp_path / "d")),
        69,
        "did not start",
        "its last log line: F1201 fatal: no disk for volumes",
    )
    assert "starting" not in line
    assert "fatal" in (tmp_path / "d" / "seaweedfs" / "weed.out").read_text()


def test_seaweedfs_binary_that_cannot_run_is_69(tmp_path):
    """A path that exists and is 'executable' but is a directory: exec fails."""
    error_line(
        serve("--weed", str(tmp_path), "--data-dir", str(tmp_path / "d")),
        69,
        "cannot start SeaweedFS",
        str(tmp_path),
    )


def test_weed_not_found_is_78(tmp_path):
    error_line(
        serve("--weed", str(tmp_path / "none"), "--data-dir", str(tmp_path / "d")),
        78,
        "`weed` was not found",
    )


def test_data_dir_that_cannot_be_created_is_73(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    error_line(
        serve("--weed", "/bin/false", "--data-dir", str(afile / "d")),
        73,
        "cannot use the data dir",
        "Not a directory",
    )
