"""BlockWriter: a range's bytes reach the file in blocks that end at aligned offsets."""

from __future__ import annotations

import os
import random

import pytest

from ghga_tasks.fileio import BlockWriter

BLOCK = 64 * 1024


def file_bytes(path, start: int, end: int) -> bytes:
    with open(path, "rb") as fh:  # another descriptor: what is in the file, not in a buffer
        fh.seek(start)
        return fh.read(end - start)


@pytest.mark.parametrize("start", [0, 5, BLOCK - 1, BLOCK, 3 * BLOCK + 17])
def test_bytes_are_written_at_block_ends_and_flushed_at_the_end(tmp_path, start):
    data = os.urandom(7 * BLOCK + 123)
    path = tmp_path / "partial"
    before = os.urandom(start)
    path.write_bytes(before + bytes(len(data)))
    chunks = random.Random(start)
    writer = BlockWriter(str(path), start, BLOCK)
    given = 0
    try:
        while given < len(data):  # chunk sizes as libcurl's vary, some over a block
            n = min(
                chunks.choice([1, 100, 4096, 16384, BLOCK - 1, BLOCK, 3 * BLOCK + 5]),
                len(data) - given,
            )
            writer.write(data[given : given + n])
            given += n
            assert writer.tell() == start + given
            assert writer.written_to == start or writer.written_to % BLOCK == 0
            assert start + given - writer.written_to < BLOCK
            assert file_bytes(path, start, writer.written_to) == data[: writer.written_to - start]
        writer.flush()
        assert writer.written_to == start + len(data)
    finally:
        writer.close()
    assert path.read_bytes() == before + data


def test_a_closed_writer_drops_what_it_held(tmp_path):
    path = tmp_path / "partial"
    path.write_bytes(bytes(2 * BLOCK))
    writer = BlockWriter(str(path), 0, BLOCK)
    writer.write(b"\1" * (BLOCK + 10))
    assert writer.written_to == BLOCK
    writer.close()
    assert path.read_bytes() == b"\1" * BLOCK + bytes(BLOCK)


def test_a_missing_file_is_an_error_at_open(tmp_path):
    with pytest.raises(FileNotFoundError):
        BlockWriter(str(tmp_path / "gone"), 0, BLOCK)
