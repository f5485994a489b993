"""Ceph RGW with forced BlueStore compression (`ceph-rgw.sh start --compression`), as the huge
campaign runs it: compressible content takes a small fraction of its size in the store, and
comes back byte-exact."""

from __future__ import annotations

import hashlib
import os

import pytest

from benchmarks.api import s3_client
from benchmarks.backends.ceph import ceph_installed, compression_stats, running_ceph
from benchmarks.files import BLOCK, source_file


def test_compressible_object_takes_a_fraction_of_its_size(tmp_path):
    if not ceph_installed() and os.geteuid() != 0:
        pytest.skip("Ceph is not installed and installing it needs root")
    src, sha = source_file(tmp_path / "files", 8 * BLOCK, "compressible")
    size = src.stat().st_size
    with running_ceph(tmp_path / "ceph", compression="lz4") as info:
        s3 = s3_client(info)
        s3.create_bucket(Bucket="squeeze")
        s3.upload_file(str(src), "squeeze", "object")
        stats = compression_stats(tmp_path / "ceph")
        body = s3.get_object(Bucket="squeeze", Key="object")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sha
    assert stats is not None
    assert stats["original"] >= size, stats
    # a 512 KiB blob of text (a 16-byte header per 4 KiB) fits one 4 KiB allocation unit:
    # 1/128; BlueStore's own blob sizes would leave 1/2 (8 KiB) or 1/16 (64 KiB)
    assert stats["allocated"] <= size // 64, stats
