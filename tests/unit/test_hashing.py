"""PrefixHasher: the SHA-256 (and MD5) of a file while it grows, read in order through one
reused buffer or through mmap windows."""

from __future__ import annotations

import errno
import hashlib
import mmap
import os

import pytest

from ghga_tasks import hashing
from ghga_tasks.hashing import READ_BLOCK, CheaperWay, PrefixHasher

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
