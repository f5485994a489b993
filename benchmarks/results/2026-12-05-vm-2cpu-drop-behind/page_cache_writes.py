"""Network-free: the system CPU of writing GiBs into a new file, per GiB, with and without
dropping what was written from the page cache some windows behind (as DropBehind does, but
starting each window's writeback at once, like the first version).

    python page_cache_writes.py PATH GIB LAG_WINDOWS   # LAG_WINDOWS 0: never drop

256 KiB pwrites on CPU 1, 64 MiB windows. Prints one line per GiB and a total."""

import os
import resource
import sys
import time

BLOCK = 256 * 1024
WINDOW = 64 * 1024 * 1024


def system_seconds() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def main(path: str, gib: int, lag: int) -> None:
    os.sched_setaffinity(0, {1})
    block = bytearray(os.urandom(4096) * 8 + bytes(BLOCK - 32 * 1024))  # compressible
    per_gib = (1 << 30) // BLOCK
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
    started, system_start = time.monotonic(), system_seconds()
    for g in range(gib):
        t0, s0 = time.monotonic(), system_seconds()
        for i in range(g * per_gib, (g + 1) * per_gib):
            block[:8] = i.to_bytes(8, "little")
            os.pwrite(fd, block, i * BLOCK)
            end = (i + 1) * BLOCK
            if lag and end % WINDOW == 0:
                window = end // WINDOW - 1
                os.posix_fadvise(fd, window * WINDOW, WINDOW, os.POSIX_FADV_DONTNEED)
                if window >= lag:
                    back = (window - lag) * WINDOW
                    os.posix_fadvise(fd, back, WINDOW, os.POSIX_FADV_DONTNEED)
        took, system = time.monotonic() - t0, system_seconds() - s0
        print(f"GiB {g}: wall {took:.2f} s, system {system:.2f} s", flush=True)
    os.close(fd)
    total, system = time.monotonic() - started, system_seconds() - system_start
    print(f"lag {lag}: wall {total:.2f} s, system {system:.2f} s for {gib} GiB")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
