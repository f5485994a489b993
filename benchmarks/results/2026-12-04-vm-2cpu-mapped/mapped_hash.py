"""Network-free: a download's writes (parallel ranges in 256 KiB blocks through BlockWriter,
a piece logged every 8 MiB) and its PrefixHasher trailing them, reading the file back
(`read`) or, window by window, whichever of mmap and read() costs it less (`mapped`).
Prints the process's CPU seconds and how many windows took each way.

    taskset -c 1 python mapped_hash.py DIR SIZE_GiB PART_MiB PARALLEL {read,mapped}
"""

import hashlib
import os
import resource
import sys
import time

from ghga_tasks.fileio import BlockWriter
from ghga_tasks import hashing
from ghga_tasks.hashing import PrefixHasher
from ghga_tasks.parts import contiguous_prefix, merge
from ghga_tasks.transfer import PIECE_SIZE, WRITE_BLOCK

MiB = 1 << 20
CHUNK = 64 * 1024  # what libcurl hands over at a time, about


PICKED: dict = {}


def counted_pick(pick):
    def wrapper(self):
        way = pick(self)
        PICKED[way] = PICKED.get(way, 0) + 1
        return way

    return wrapper


def main() -> None:
    hashing.CheaperWay.pick = counted_pick(hashing.CheaperWay.pick)
    out, size = sys.argv[1], int(float(sys.argv[2]) * 1024 * MiB)
    part, parallel, mode = int(sys.argv[3]) * MiB, int(sys.argv[4]), sys.argv[5]
    pattern = os.urandom(4 * MiB + CHUNK)
    path = os.path.join(out, "mapped-hash.partial")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    os.posix_fallocate(fd, 0, size)
    hasher = PrefixHasher(path, "sha256", mapped=mode == "mapped")
    expected = hashlib.sha256()
    parts = [(o, min(part, size - o)) for o in range(0, size, part)]
    done: list = []
    active: list = []
    t0, r0 = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    while parts or active:
        while parts and len(active) < parallel:
            o, n = parts.pop(0)
            active.append([o, n, 0, BlockWriter(path, o, WRITE_BLOCK), o])
        for job in list(active):  # round-robin, one chunk each, as the multi loop does
            o, n, got, writer, logged = job
            k = min(CHUNK, n - got)
            at = (o + got) % (4 * MiB)
            writer.write(pattern[at : at + k])
            job[2] = got = got + k
            if got == n:
                writer.flush()
                writer.close()
                active.remove(job)
            if writer.written_to - logged >= PIECE_SIZE or got == n:
                done.append((logged, writer.written_to - logged))
                job[4] = writer.written_to
                done[:] = merge(done)
                hasher.advance(contiguous_prefix(done))
    digest = hasher.finish(size)["sha256"]
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.monotonic() - t0
    for o in range(0, size, 4 * MiB):  # the expected digest, outside the measurement
        expected.update(pattern[: min(4 * MiB, size - o)])
    os.close(fd)
    os.unlink(path)
    print(
        f"{mode} part {part // MiB} MiB x {parallel}: user {r1.ru_utime - r0.ru_utime:.2f} "
        f"sys {r1.ru_stime - r0.ru_stime:.2f} wall {wall:.2f} s, "
        f"digest {'ok' if digest == expected.hexdigest() else 'WRONG'}, windows {PICKED}",
        flush=True,
    )


if __name__ == "__main__":
    main()
