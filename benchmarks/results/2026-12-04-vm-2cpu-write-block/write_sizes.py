"""System CPU-s of writing a new file in aligned writes of one size (the probe behind NOTES.md).

    taskset -c 1 python3 write_sizes.py 4096:10 256:10 4096:0   # KiB per write : pause s

Each trial first writes and deletes a file of the size (memory freed just before), then
waits the pause (a VM's host may take the freed memory back meanwhile), then writes the
file it measures. WSIZE sets the file size in bytes (default 1 GiB); DIR where it goes.
"""

import os
import resource
import sys
import time

SIZE = int(os.environ.get("WSIZE", 1 << 30))
PATH = os.path.join(os.environ.get("DIR", "/var/tmp"), "write-sizes-probe.bin")


def write(block: int) -> float:
    chunk = os.urandom(min(block, 1 << 20)) * max(1, block >> 20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    fd = os.open(PATH, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        offset = 0
        while offset < SIZE:
            offset += os.pwrite(fd, chunk, offset)
    finally:
        os.close(fd)
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime - before


for trial in sys.argv[1:]:
    kib, pause = trial.split(":")
    block = int(kib) << 10
    write(block)
    os.unlink(PATH)
    time.sleep(float(pause))
    system = write(block)
    os.unlink(PATH)
    print(f"{kib:>5} KiB writes, {pause:>3} s pause: {system:.2f} system CPU-s", flush=True)
