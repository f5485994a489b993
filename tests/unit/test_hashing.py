"""PrefixHasher: the SHA-256 (and MD5) of a file while it grows, read in order through one
reused buffer or through mmap windows."""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import shutil
import subprocess

import pytest

from ghga_tasks import fileio, hashing
from ghga_tasks.fileio import DropBehind
from ghga_tasks.hashing import READ_BLOCK, CheaperWay, PrefixHasher
from ghga_tasks.units import GiB, MiB

WINDOW = 16 * 65536  # a multiple of every mmap.ALLOCATIONGRANULARITY, a few READ_BLOCKs


@pytest.fixture
def mappings(monkeypatch):
    """Small mmap windows, and the windows the hasher mapped, as (offset, length)."""
    monkeypatch.setattr(hashing, "MAP_WINDOW", WINDOW)
    made, real = [], mmap.mmap

    def counting_mmap(fd, length, **kwargs):
        made.append((kwargs["offset"], length))
        return real(fd, length, **kwargs)

    monkeypatch.setattr(hashing.mmap, "mmap", counting_mmap)
    return made


@pytest.mark.parametrize("mapped", [False, True])
def test_trails_a_growing_file_across_buffer_boundaries(tmp_path, mappings, mapped):
    # pieces that end inside, on and across the buffer's and the window's boundaries
    sizes = [1, READ_BLOCK - 1, 2, READ_BLOCK, 3 * READ_BLOCK + 5, 7, WINDOW, 2 * WINDOW + 3]
    data = os.urandom(sum(sizes))
    path = tmp_path / "growing"
    path.write_bytes(b"")
    hasher = PrefixHasher(str(path), "md5", mapped=mapped)
    written = 0
    with open(path, "ab") as out:
        for n in sizes:
            out.write(data[written : written + n])
            out.flush()
            written += n
            hasher.advance(written)
    digests = hasher.finish(len(data))
    assert digests == {
        "md5": hashlib.md5(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    if mapped:  # the first window is mapped (each way once, then the cheaper)
        assert mappings and mappings[0][0] == 0
        assert {o % WINDOW for o, _ in mappings} == {0}
    else:
        assert mappings == []


def test_a_file_mapped_window_by_window(tmp_path, mappings, monkeypatch):
    monkeypatch.setattr(hashing.CheaperWay, "pick", lambda self: hashing.MAPPED)
    data = os.urandom(3 * WINDOW + 100)
    path = tmp_path / "partial"
    path.write_bytes(data)
    assert PrefixHasher(str(path), mapped=True).finish(len(data)) == {
        "sha256": hashlib.sha256(data).hexdigest()
    }
    assert mappings == [(0, WINDOW), (WINDOW, WINDOW), (2 * WINDOW, WINDOW), (3 * WINDOW, 100)]


def test_windows_mapped_and_read_in_turn_hash_the_file(tmp_path, mappings, monkeypatch):
    turns = iter([hashing.MAPPED, hashing.READ, hashing.READ, hashing.MAPPED, hashing.READ])
    monkeypatch.setattr(hashing.CheaperWay, "pick", lambda self: next(turns))
    data = os.urandom(4 * WINDOW + 100)
    path = tmp_path / "partial"
    path.write_bytes(data)
    hasher = PrefixHasher(str(path), "md5", mapped=True)
    for upto in range(READ_BLOCK // 2, len(data), 3 * READ_BLOCK):  # steps across windows
        hasher.advance(upto)
    assert hasher.finish(len(data)) == {
        "md5": hashlib.md5(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert [o for o, _ in mappings] == [0, 3 * WINDOW]


def test_cheaper_way_tries_each_then_takes_the_cheaper_and_probes_the_other():
    ways = CheaperWay(probe=4, memory=1000)
    assert ways.pick() == "mapped"
    ways.spent("mapped", 1.0, 100)  # 0.01 s per byte
    assert ways.pick() == "read"
    ways.spent("read", 3.0, 100)  # 0.03
    picks = [ways.pick() for _ in range(8)]  # picks 3 to 10: the 4th and 8th probe
    assert picks == ["mapped", "read", "mapped", "mapped", "mapped", "read", "mapped", "mapped"]
    # mapping gets dearer: halved past `memory` bytes, old figures fade and the pick turns
    for _ in range(5):
        ways.spent("mapped", 50.0, 500)  # 0.1 s per byte
    assert ways.bytes["mapped"] <= 1000
    assert [ways.pick() for _ in range(3)] == ["read", "mapped", "read"]  # pick 12 probes


def test_a_file_that_cannot_be_mapped_is_read(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(errno.ENODEV, "No such device")  # as on some FUSE file systems

    monkeypatch.setattr(hashing.mmap, "mmap", refuse)
    data = os.urandom(3 * READ_BLOCK + 5)
    path = tmp_path / "partial"
    path.write_bytes(data)
    digests = PrefixHasher(str(path), mapped=True).finish(len(data))
    assert digests == {"sha256": hashlib.sha256(data).hexdigest()}


def test_a_mapped_file_shorter_than_promised_is_an_error(tmp_path, mappings):
    path = tmp_path / "short"
    path.write_bytes(b"x" * (WINDOW + 10))
    hasher = PrefixHasher(str(path), mapped=True)
    with pytest.raises(OSError, match=f"ended at {WINDOW + 10} bytes while hashing"):
        hasher.finish(WINDOW + 11)


def test_a_file_shorter_than_promised_is_an_error(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(b"x" * (READ_BLOCK + 10))
    hasher = PrefixHasher(str(path))
    with pytest.raises(OSError, match=f"ended at {READ_BLOCK + 10} bytes while hashing"):
        hasher.finish(READ_BLOCK + 11)


def test_close_without_finishing_stops_the_thread(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(os.urandom(4 * READ_BLOCK))
    hasher = PrefixHasher(str(path))
    hasher.advance(4 * READ_BLOCK)
    hasher.close(abort=True)
    assert not hasher._thread.is_alive()


# DONTNEED drops only whole folios of the page cache (up to 2 MiB on x86-64)
DROP = 4 * MiB


@pytest.fixture
def advice(monkeypatch):
    """Small DropBehind windows, two of them as the lag, and the windows every DONTNEED was
    given for (as (window, windows long))."""
    monkeypatch.setattr(DropBehind, "WINDOW", DROP)
    monkeypatch.setattr(fileio, "default_drop_lag", lambda: 2 * DROP)
    given, real = [], getattr(os, "posix_fadvise", None)

    def recording_fadvise(fd, offset, length, advice):
        assert advice == os.POSIX_FADV_DONTNEED
        given.append((offset // DROP, length // DROP))
        if real is not None:
            real(fd, offset, length, advice)

    monkeypatch.setattr(fileio.os, "posix_fadvise", recording_fadvise, raising=False)
    monkeypatch.setattr(fileio.os, "POSIX_FADV_DONTNEED", 4, raising=False)
    return given


def test_drop_behind_drops_each_window_once_the_reader_is_lag_bytes_past_it(tmp_path, advice):
    path = tmp_path / "partial"
    path.write_bytes(b"x" * 6 * DROP)
    with open(path, "rb") as reader:
        dropper = DropBehind(reader.fileno())
        assert dropper.lag == 2 * DROP
        dropper.passed(3 * DROP - 1)
        assert advice == []
        dropper.passed(3 * DROP)
        assert advice == [(0, 1)]
        dropper.passed(5 * DROP + 5)
        assert advice == [(0, 1), (1, 1), (2, 1)]
        dropper.passed(4 * DROP)  # never backwards
        assert len(advice) == 3


@pytest.mark.parametrize(
    ("memory", "lag"), [(2 * GiB, 256 * MiB), (16 * GiB, 2 * GiB), (64 * GiB, 4 * GiB)]
)
def test_the_drop_lag_is_an_eighth_of_memory_within_bounds(monkeypatch, memory, lag):
    pages = {"SC_PHYS_PAGES": memory // 4096, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(fileio.os, "sysconf", pages.__getitem__, raising=False)
    assert fileio.default_drop_lag() == lag


def _cached_bytes(path) -> int:
    """How many of the file's bytes are in the page cache (util-linux's fincore)."""
    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise (macOS, Windows)")
@pytest.mark.skipif(shutil.which("fincore") is None, reason="util-linux's fincore is missing")
@pytest.mark.parametrize("drop", [True, False])
def test_the_hasher_drops_what_it_hashed_from_the_page_cache(tmp_path, advice, drop):
    data = os.urandom(5 * DROP)
    path = tmp_path / "partial"
    with open(path, "wb") as out:
        out.write(data)
        os.fsync(out.fileno())  # written back, as the kernel's writeback does before the lag
    assert _cached_bytes(path) == len(data)
    digests = PrefixHasher(str(path), drop=drop).finish(len(data))
    assert digests == {"sha256": hashlib.sha256(data).hexdigest()}
    if drop:  # the windows two behind the end are gone, the last two stay
        assert advice == [(0, 1), (1, 1), (2, 1)]
        assert _cached_bytes(path) == 2 * DROP
    else:
        assert advice == []
        assert _cached_bytes(path) == len(data)
