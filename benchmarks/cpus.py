"""Separate CPUs for servers and clients, as on two machines.

``[cpus] servers = "0"`` and ``clients = "1"`` (Linux CPU lists: ``0``, ``0-3``, ``0,2``):
the harness pins every thread of its own process to the server CPUs, so every server it
starts (API, SeaweedFS, Ceph MON/OSD/RGW, nginx) inherits them, and starts each client
under ``taskset -c CLIENTS``. Each run records the pinning and the CPUs the server
processes were actually allowed (from ``/proc/PID/status``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional


def parse_cpu_list(text: str) -> set[int]:
    """ "0-2,5" -> {0, 1, 2, 5}; raises ValueError for anything else."""
    cpus: set[int] = set()
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        first, _, last = item.partition("-")
        lo, hi = int(first), int(last or first)
        if lo < 0 or hi < lo:
            raise ValueError(f"bad CPU range {item!r}")
        cpus.update(range(lo, hi + 1))
    if not cpus:
        raise ValueError(f"empty CPU list {text!r}")
    return cpus


def cpumask(cpus: set[int]) -> str:
    """The kernel's hex CPU mask: 32-bit groups, comma-separated, e.g. {0, 33} -> "2,00000001"."""
    mask = sum(1 << cpu for cpu in cpus)
    groups = []
    while True:
        groups.append(mask & 0xFFFFFFFF)
        mask >>= 32
        if not mask:
            break
    return ",".join([f"{groups[-1]:x}"] + [f"{g:08x}" for g in reversed(groups[:-1])])


def allowed_cpus(pid: int) -> Optional[str]:
    """The Cpus_allowed_list of a process, or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


WORKQUEUE_CPUMASK = "/sys/devices/virtual/workqueue/cpumask"


@dataclass(frozen=True)
class CpuSplit:
    servers: str
    clients: str

    @classmethod
    def from_config(cls, table: Optional[dict]) -> Optional["CpuSplit"]:
        if not table or not table.get("enabled", True):
            return None
        split = cls(str(table["servers"]), str(table["clients"]))
        servers, clients = parse_cpu_list(split.servers), parse_cpu_list(split.clients)
        if servers & clients:
            raise ValueError(f"[cpus] servers {split.servers} and clients {split.clients} overlap")
        have = os.sched_getaffinity(0)
        if not (servers | clients) <= have:
            raise ValueError(f"[cpus] asks for CPUs this process may not use (it has {have})")
        return split

    def masks(self) -> tuple[str, str]:
        """The kernel's CPU masks of (servers, clients)."""
        return cpumask(parse_cpu_list(self.servers)), cpumask(parse_cpu_list(self.clients))

    def pin_harness(self) -> None:
        """Every thread of this process on the server CPUs (children inherit them)."""
        self.pin_threads(parse_cpu_list(self.servers))

    @staticmethod
    def pin_threads(cpus: set[int], pid: Optional[int] = None) -> None:
        """Every thread of this process (or of `pid`) on `cpus`."""
        try:
            tasks = os.listdir(f"/proc/{pid or 'self'}/task")
        except OSError:  # the process ended
            return
        for task in tasks:
            try:
                os.sched_setaffinity(int(task), cpus)
            except (ProcessLookupError, PermissionError):  # ended meanwhile / not ours
                pass

    @contextlib.contextmanager
    def everywhere(self, server_pids: Callable[[], Iterable[int]]) -> Iterator[None]:
        """Untimed set-up (seeding) on every CPU of the split: the harness and every thread
        of the server processes, pinned back to the server CPUs afterwards."""
        every = parse_cpu_list(self.servers) | parse_cpu_list(self.clients)
        self.pin_threads(every)
        for pid in server_pids():
            self.pin_threads(every, pid)
        try:
            yield
        finally:
            self.pin_harness()
            for pid in server_pids():
                self.pin_threads(parse_cpu_list(self.servers), pid)

    def pin_kernel_workqueues(self) -> Optional[str]:
        """The kernel's unbound workqueues (btrfs compression, writeback) on the server CPUs;
        returns the mask before, for restore_kernel_workqueues()."""
        path = Path(WORKQUEUE_CPUMASK)
        try:
            before = path.read_text().strip()
            path.write_text(self.masks()[0] + "\n")
        except OSError:
            return None
        return before

    @staticmethod
    def restore_kernel_workqueues(before: Optional[str]) -> None:
        if before:
            try:
                Path(WORKQUEUE_CPUMASK).write_text(before + "\n")
            except OSError:
                pass

    def client_prefix(self) -> list[str]:
        taskset = shutil.which("taskset") or "/usr/bin/taskset"
        return [taskset, "-c", self.clients]

    def facts(self, server_pids: Iterable[int]) -> dict:
        seen = sorted({c for c in (allowed_cpus(p) for p in server_pids) if c is not None})
        return {"servers": self.servers, "clients": self.clients, "server_pids_allowed": seen}
