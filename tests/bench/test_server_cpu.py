"""ServerCpu: the server CPU a run spent, in total and split by process name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.measure import ServerCpu

SPIN = (
    "import sys, time\n"
    "sys.stdin.readline()\n"
    "t = time.process_time()\n"
    "while time.process_time() - t < 0.5:\n"
    "    pass\n"
    "print('spun', flush=True)\n"
    "sys.stdin.readline()\n"
)


def test_total_and_split_by_process_name():
    spinner = subprocess.Popen(
        [sys.executable, "-c", SPIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        spinner_name = Path(f"/proc/{spinner.pid}/comm").read_text().strip()
        cpu = ServerCpu([spinner.pid, sleeper.pid])
        cpu.start()
        spinner.stdin.write("go\n")
        spinner.stdin.flush()
        assert spinner.stdout.readline() == "spun\n"
        total = cpu.stop()
    finally:
        spinner.kill()
        sleeper.kill()
        spinner.wait()
        sleeper.wait()
    assert set(cpu.by_process) == {spinner_name, "sleep"}
    assert cpu.by_process[spinner_name] >= 0.45  # clock ticks: 0.5 s spun, counted in 10 ms
    assert cpu.by_process["sleep"] < 0.1
    assert abs(sum(cpu.by_process.values()) - total) < 0.01
