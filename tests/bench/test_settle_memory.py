"""settle_memory: the file that settles memory before a run is written, sized and deleted."""

from __future__ import annotations

import pytest

from benchmarks import measure
from benchmarks.measure import settle_memory
from ghga_tasks.units import GiB, MiB


def test_writes_the_runs_size_and_deletes_it(tmp_path):
    assert settle_memory(tmp_path, 3 * MiB + 5) == 3 * MiB + 5
    assert list(tmp_path.iterdir()) == []


def test_at_most_half_the_available_memory_and_the_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(measure, "_meminfo_bytes", lambda key: 8 * MiB)
    assert settle_memory(tmp_path, 1 * GiB) == 4 * MiB
    monkeypatch.setattr(measure, "SETTLE_CAP", 2 * MiB)
    assert settle_memory(tmp_path, 1 * GiB) == 2 * MiB
    assert list(tmp_path.iterdir()) == []


def test_the_file_goes_even_when_writing_fails(tmp_path, monkeypatch):
    def full_disk(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(measure.os, "write", full_disk)
    with pytest.raises(OSError, match="No space"):
        settle_memory(tmp_path, 1 * MiB)
    assert list(tmp_path.iterdir()) == []


def test_reads_meminfo():
    assert measure._meminfo_bytes("MemTotal") > 64 * MiB
    assert measure._meminfo_bytes("NoSuchKey") == 0
