"""PrefixHasher: the SHA-256 (and MD5) of a file while it grows, read in order through one
reused buffer."""

from __future__ import annotations

import hashlib
import os

import pytest

from ghga_tasks.hashing import READ_BLOCK, PrefixHasher


def test_trails_a_growing_file_across_buffer_boundaries(tmp_path):
    # pieces that end inside, on and across the buffer's boundaries
    sizes = [1, READ_BLOCK - 1, 2, READ_BLOCK, 3 * READ_BLOCK + 5, 7]
    data = os.urandom(sum(sizes))
    path = tmp_path / "growing"
    path.write_bytes(b"")
    hasher = PrefixHasher(str(path), "md5")
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
