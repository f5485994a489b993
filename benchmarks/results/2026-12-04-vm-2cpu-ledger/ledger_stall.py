"""The download's writes onto the client's file system, without a network: one thread
writes 4 parts of 64 MiB round-robin in 256 KiB blocks, as the pycurl loop does, logs a
ledger line per 8 MiB piece, and a PrefixHasher trails the contiguous prefix. Prints the
rate and the writing thread's time in ledger calls.

Usage, the file on the btrfs with compress-force (cpu 0 busy: compression waits for it):
    taskset -c 1 python3 ledger_stall.py FILE GIB now|later|none
now: lines appended by the writing thread (before 2026-12-04), later: Ledger.append_later.
"""

import json
import os
import sys
import time
from pathlib import Path

from ghga_tasks import state
from ghga_tasks.hashing import PrefixHasher

MiB = 1 << 20
BLOCK, PART, PIECE, PARALLEL = 256 * 1024, 64 * MiB, 8 * MiB, 4


def main(path: str, gib: int, mode: str) -> None:
    size = gib << 30
    filler = b"GHGA file services benchmark filler. "
    block = bytearray((filler * (BLOCK // len(filler) + 1))[:BLOCK])
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.ftruncate(fd, size)
    hasher = PrefixHasher(path)
    now = open(path + ".now", "a") if mode == "now" else None
    later = state.Ledger(Path(path + ".later"), {"test": 1}) if mode == "later" else None
    done = [0] * (size // PART)
    active, upcoming, prefix, in_ledger = list(range(PARALLEL)), PARALLEL, 0, 0.0
    started = time.monotonic()
    while active:
        for p in list(active):
            offset = p * PART + done[p]
            for j in range(0, BLOCK, 4096):  # every 4 KiB block unique
                block[j : j + 8] = (offset + j).to_bytes(8, "little")
            os.pwrite(fd, block, offset)
            done[p] += BLOCK
            if done[p] % PIECE == 0:
                line = {"offset": offset + BLOCK - PIECE, "size": PIECE, "boot": "0123abcd"}
                logging = time.monotonic()
                if now is not None:
                    now.write(json.dumps(line, sort_keys=True) + "\n")
                    now.flush()
                if later is not None:
                    later.append_later([line])
                in_ledger += time.monotonic() - logging
                while prefix < size:
                    q = prefix // PART
                    end = q * PART + done[q] // PIECE * PIECE
                    if end <= prefix:
                        break
                    prefix = end
                    if done[q] < PART:
                        break
                hasher.advance(prefix)
            if done[p] == PART:
                active.remove(p)
                if upcoming < len(done):
                    active.append(upcoming)
                    upcoming += 1
    hasher.finish(size)
    seconds = time.monotonic() - started
    print(
        f"{mode}: {size / seconds / 1e6:.0f} MB/s, "
        f"the writing thread {in_ledger:.2f} s in ledger calls"
    )
    os.close(fd)
    for f in (now, later):
        if f is not None:
            f.close()
    for suffix in ("", ".now", ".later"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
