"""Which cells a peer takes part in: the full campaign leaves out what a peer cannot do."""

from __future__ import annotations

from benchmarks.config import load
from benchmarks.paths import REPO

FULL_SEPARATE = REPO / "configs" / "benchmarks" / "full-separate-cpus.toml"


def cells(tmp_path, tool: str) -> set[tuple[str, str]]:
    runs = load(FULL_SEPARATE, results_dir=tmp_path / "r", work_dir=tmp_path / "w").runs
    return {(spec.backend, spec.direction) for spec in runs if spec.tool == tool}


def test_s3transfer_crt_does_not_upload_to_ceph(tmp_path):
    # its aws-chunked CRC32 trailer is refused by Ceph 16's RGW (XAmzContentSHA256Mismatch)
    assert cells(tmp_path, "s3transfer-crt") == {
        ("seaweedfs", "download"),
        ("seaweedfs", "upload"),
        ("ceph", "download"),
    }


def test_aria2c_only_downloads(tmp_path):
    assert cells(tmp_path, "aria2c-4") == {("seaweedfs", "download"), ("ceph", "download")}
