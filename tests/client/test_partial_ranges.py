"""A download range is logged piece by piece as it grows, and the cost of a fault is reported.

- A SIGKILL loses at most the unlogged tail of each range in flight, not the ranges whole.
- `bytes_resent` counts the bytes of attempts that were cut off and had to move again.
"""

from __future__ import annotations

import os

import pycurl
from helpers import (
    MiB,
    cli_download,
    json_line,
    kill_when,
    ranges_logged,
    sha256_of,
    stub_object,
    upload_with_a_part_corrupted_once,
)

from ghga_tasks import parts as planning
from ghga_tasks import transfer
from ghga_tasks.parts import Part
from ghga_tasks.server.stub import Cut
from ghga_tasks.strategies import DownloadStrategy
from ghga_tasks.transfer import Job, Outcome

RANGE = 64 * MiB  # --part-size of the download
SERVER_PART = 16 * MiB  # the part size the reference server picks for these uploads
WAIT = 120  # seconds any poll loop may wait for the other side


def recorded(entries: list) -> list:
    return planning.merge((e["offset"], e["size"]) for e in entries if "offset" in e)


def whole_ranges_bytes(intervals: list, size: int, range_size: int) -> int:
    """What a ledger of whole ranges only would hold of these intervals."""
    covered = 0
    for start in range(0, size, range_size):
        end = min(start + range_size, size)
        if any(o <= start and end <= o + n for o, n in intervals):
            covered += end - start
    return covered


# --- planning: pieces are arbitrary, overlapping or adjacent intervals ----------------------


def test_fine_tail_cuts_the_last_ranges_and_keeps_every_byte_once():
    ranges = planning.missing_ranges(100 * MiB, 16 * MiB, [(0, 10 * MiB)])
    tail = planning.fine_tail(ranges, count=2, pieces=4)
    assert tail[:4] == ranges[:4]  # sent first, as they were
    assert [p.length for p in tail[4:]] == [4 * MiB] * 4 + [int(2.5 * MiB)] * 4  # quarters
    assert planning.merge((p.offset, p.length) for p in tail) == [(10 * MiB, 90 * MiB)]
    assert sum(p.length for p in tail) == 90 * MiB  # no byte twice
    assert [p.offset for p in tail] == sorted(p.offset for p in tail)
    # never below the floor, and nothing to cut is nothing
    assert [p.length for p in planning.fine_tail([Part(0, 0, 3 * MiB)], 4)] == [MiB] * 3
    assert planning.fine_tail([], 4) == []
    assert planning.fine_tail(ranges, 0) == ranges


def test_missing_ranges_fetch_only_the_gaps_between_pieces():
    size = 100
    pieces = [(30, 5), (0, 10), (10, 5), (32, 10), (60, 40), (42, 0), (70, 5)]
    assert planning.merge(pieces) == [(0, 15), (30, 12), (60, 40)]
    assert planning.done_bytes(pieces) == 15 + 12 + 40
    assert planning.contiguous_prefix(pieces) == 15
    assert planning.missing_ranges(size, 10, pieces) == [
        Part(0, 15, 10),
        Part(0, 25, 5),
        Part(0, 42, 10),
        Part(0, 52, 8),
    ]
    assert planning.missing_ranges(size, 64, [(0, 100), (50, 10)]) == []
    assert planning.missing_ranges(size, 64, [(90, 20)]) == [Part(0, 0, 64), Part(0, 64, 26)]


def test_after_reboot_only_checkpointed_pieces_are_trusted():
    from ghga_tasks.partial import trusted_ranges

    entries = [
        {"offset": 0, "size": 8, "boot": "a"},
        {"offset": 64, "size": 8, "boot": "a"},
        {"durable": 2},
        {"offset": 8, "size": 8, "boot": "a"},
    ]
    assert planning.contiguous_prefix(trusted_ranges(entries, "a")) == 16
    assert trusted_ranges(entries, "b") == [(0, 8), (64, 8)]


# --- the strategy: a piece is logged once its bytes are in the file ------------------------


class FakeCurl:
    """Stands in for a handle in poll(): only SIZE_DOWNLOAD_T is asked for."""

    def __init__(self, downloaded: int):
        self.downloaded = downloaded

    def getinfo(self, what: int) -> int:
        assert what == pycurl.SIZE_DOWNLOAD_T
        return self.downloaded


def test_pieces_are_logged_past_each_threshold_and_only_once_written(tmp_path):
    """Past each PIECE_SIZE threshold the range is logged up to the writer's last aligned
    block end: those bytes are in the file, the block being filled is not logged yet."""
    piece, block = transfer.PIECE_SIZE, transfer.WRITE_BLOCK
    offset, length = 5, 2 * piece + 3 * MiB
    path = tmp_path / "partial"
    path.write_bytes(bytes(offset + length))
    data = os.urandom(length)
    logged = []

    def on_piece(o: int, n: int) -> None:
        with open(path, "rb") as fh:  # another descriptor: the bytes must be in the file
            fh.seek(o)
            assert fh.read(n) == data[o - offset : o - offset + n]
        logged.append((o, n))

    def block_end(received: int) -> int:
        return (offset + received) // block * block

    strategy = DownloadStrategy(
        str(path), offset + length, lambda: "http://127.0.0.1:9/x", lambda: None, on_piece
    )
    job = Job(Part(0, offset, length))
    job.reset()
    curl = pycurl.Curl()
    strategy.begin(curl, job)
    written = 0

    def write_and_poll(n: int) -> None:
        nonlocal written
        job.fh.write(data[written : written + n])  # as libcurl's write callback does
        written += n
        strategy.poll({FakeCurl(written): job})

    write_and_poll(piece - 1)
    assert logged == []
    write_and_poll(MiB + 1)  # past the first threshold
    first_end = block_end(written)
    assert offset < first_end < offset + written and first_end % block == 0
    assert logged == [(offset, first_end - offset)]
    write_and_poll(first_end - offset + piece - 1 - written)  # not yet a piece past it
    assert len(logged) == 1
    write_and_poll(length - written)
    assert logged[1:] == [(first_end, block_end(length) - first_end)]
    assert strategy.end(curl, job) is Outcome.OK  # the last, partial block is written
    strategy.done(job)
    assert logged[2:] == [(block_end(length), offset + length - block_end(length))]
    assert job.kept == length and path.read_bytes()[offset:] == data

    # an attempt cut off after a piece starts again where the pieces end
    again = Job(Part(0, offset, length))
    again.reset()
    strategy.begin(curl, again)
    again.fh.write(data[:piece])
    strategy.poll({FakeCurl(piece): again})
    again.fh.write(data[piece : piece + MiB])
    transfer.close_quietly(again.fh)  # cut: the unlogged bytes are not kept
    again.reset()
    strategy.begin(curl, again)
    assert again.fh.tell() == block_end(piece) and again.kept_before == block_end(piece) - offset
    transfer.close_quietly(again.fh)
    curl.close()


# --- a killed download keeps the pieces of the ranges in flight ----------------------------


def test_killed_download_keeps_partial_ranges(client, tmp_path):
    size = 4 * RANGE
    file_id, sha, out, proc = client.put_and_start_download(
        tmp_path, size, "--parallel", "2", "--part-size", "64MiB", "--max-rate", "16MiB"
    )

    def partial_piece_logged() -> bool:
        entries = ranges_logged(client.state_dir)
        return any("offset" in e and e["size"] < RANGE for e in entries)

    kill_when(proc, partial_piece_logged, timeout=WAIT)
    kept = recorded(ranges_logged(client.state_dir))
    kept_bytes = sum(n for _, n in kept)
    assert kept_bytes > whole_ranges_bytes(kept, size, RANGE)

    again = client.download(file_id, out, "--part-size", "64MiB")
    assert again.returncode == 0, again.stderr
    result = json_line(again)
    assert result["bytes_resumed"] >= kept_bytes
    assert result["bytes_transferred"] <= size - kept_bytes
    assert result["bytes_transferred"] + result["bytes_resumed"] == size
    assert result["bytes_resent"] == 0
    assert sha256_of(out / file_id) == sha


# --- bytes_resent ----------------------------------------------------------------------------


def test_upload_part_corrupted_once_is_resent_and_counted(client, tmp_path):
    size = 2 * SERVER_PART + 10
    file_id, src, sha = client.new_file(tmp_path, size, register_sha=False)
    proc, proxy = upload_with_a_part_corrupted_once(client, file_id, src, 2)
    assert proc.returncode == 0, proc.stderr
    assert len(proxy.corrupted) == 1, proxy.requests
    result = json_line(proc)
    assert result["sha256"] == sha
    assert result["bytes_resent"] == SERVER_PART
    assert result["bytes_transferred"] == size

    clean_id, clean, _ = client.new_file(tmp_path, size, register_sha=False)
    proc = client.upload(clean_id, clean, "--wait")
    assert proc.returncode == 0, proc.stderr
    assert json_line(proc)["bytes_resent"] == 0
    out = tmp_path / "out"
    out.mkdir()
    down = client.download(clean_id, out)
    assert down.returncode == 0, down.stderr
    assert (json_line(down)["bytes_resent"], json_line(down)["bytes_transferred"]) == (0, size)


def test_range_cut_off_is_continued_from_its_last_piece_and_the_rest_counted(stub, tmp_path):
    """The first body is cut off after `cut` bytes, once the client logged a piece of it."""
    size, cut = 32 * MiB, 12 * MiB
    data = os.urandom(size)
    state_dir = tmp_path / "state"
    ranges, cuts = [], []

    def piece_logged() -> bool:
        return bool(recorded(ranges_logged(state_dir)))

    def cut_the_first(status, head, body):
        ranges.append(head["Content-Range"])
        if len(ranges) > 1:
            return status, head, body
        cuts.append(Cut(body, cut, until=piece_logged, wait=WAIT))
        return status, head, cuts[0]

    srv = stub_object(stub, data, storage=cut_the_first)
    out = tmp_path / "out"
    out.mkdir()
    proc = cli_download(
        srv.url, "x", out, state_dir, "--part-size", "32MiB", "--parallel", "1", "--json", "--quiet"
    )
    assert proc.returncode == 0, proc.stderr
    assert cuts[0].until_met, "no piece was logged before the cut"
    assert (out / "x").read_bytes() == data
    first_piece = ranges_logged(state_dir)[0]
    resumed_at = first_piece["offset"] + first_piece["size"]
    assert first_piece["offset"] == 0 and transfer.PIECE_SIZE <= resumed_at <= cut
    assert ranges == [f"bytes 0-{size - 1}/{size}", f"bytes {resumed_at}-{size - 1}/{size}"]
    result = json_line(proc)
    assert result["bytes_resent"] == cut - resumed_at
    assert (result["bytes_transferred"], result["bytes_resumed"]) == (size, 0)
