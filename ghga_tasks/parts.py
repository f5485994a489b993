"""Part and range planning: pure functions, no I/O."""

from __future__ import annotations

from typing import Iterable, List, NamedTuple, Tuple

from .units import MiB

MAX_PARTS = 10_000
FIRST_PART_SIZE = 16 * MiB


class Part(NamedTuple):
    number: int  # 1-based for uploads; 0 for download ranges
    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


def upload_part_size(size: int) -> int:
    """The part size the Upload Controller picks: 16 MiB, doubled until ≤ 10,000 parts."""
    part = FIRST_PART_SIZE
    while part * MAX_PARTS < size:
        part *= 2
    return part


def part_count(size: int, part_size: int) -> int:
    """Number of parts of an upload; an empty file has one empty part."""
    return max(1, -(-size // part_size))


def upload_parts(size: int, part_size: int) -> List[Part]:
    """Part n covers [(n-1)·part_size, min(n·part_size, size)); an empty file has one empty part."""
    if part_size <= 0:
        raise ValueError("part size must be positive")
    if size < 0:
        raise ValueError("size must be >= 0")
    count = part_count(size, part_size)
    if count > MAX_PARTS:
        raise ValueError(f"{count} parts of {part_size} bytes exceed the limit of {MAX_PARTS}")
    return [
        Part(n, (n - 1) * part_size, min(part_size, size - (n - 1) * part_size))
        for n in range(1, count + 1)
    ]


def merge(intervals: Iterable[Tuple[int, int]]) -> List[Tuple[int, int]]:
    """Merge (offset, length) intervals into sorted, disjoint ones."""
    out: List[List[int]] = []
    for offset, length in sorted((o, n) for o, n in intervals if n > 0):
        if out and offset <= out[-1][1]:
            out[-1][1] = max(out[-1][1], offset + length)
        else:
            out.append([offset, offset + length])
    return [(a, b - a) for a, b in out]


def done_bytes(intervals: Iterable[Tuple[int, int]]) -> int:
    return sum(n for _, n in merge(intervals))


def contiguous_prefix(intervals: Iterable[Tuple[int, int]]) -> int:
    """How many bytes from offset 0 are covered without a gap."""
    merged = merge(intervals)
    return merged[0][1] if merged and merged[0][0] == 0 else 0


def missing_ranges(size: int, range_size: int, done: Iterable[Tuple[int, int]]) -> List[Part]:
    """The gaps of [0, size) not covered by `done`, cut into ranges of at most range_size."""
    if range_size <= 0:
        raise ValueError("range size must be positive")
    ranges: List[Part] = []
    pos = 0
    for offset, length in merge(done) + [(size, 0)]:
        gap_end = min(offset, size)
        while pos < gap_end:
            n = min(range_size, gap_end - pos)
            ranges.append(Part(0, pos, n))
            pos += n
        pos = max(pos, offset + length)
    return ranges


def fine_tail(ranges: List[Part], count: int, pieces: int = 8, floor: int = MiB) -> List[Part]:
    """The same bytes, with the last `count` ranges cut into `pieces` each (none below
    `floor` bytes). A download's hash trails its contiguous prefix: when the last ranges,
    sent side by side, finish together, all they hold is hashed after the last byte came
    in, and the store waits meanwhile. Small last ranges keep that short."""
    cut = max(0, len(ranges) - count)
    out = ranges[:cut]
    for r in ranges[cut:]:
        step = max(floor, -(-r.length // pieces))
        out.extend(
            Part(r.number, pos, min(step, r.end - pos)) for pos in range(r.offset, r.end, step)
        )
    return out
