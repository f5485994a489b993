"""Per-run measurements: wall time, client CPU and peak RSS, server CPU, machine facts.

Each client runs under a fresh ``/usr/bin/time`` (GNU time, a 27 KB C program): it
forks the client, reaps it with wait4 and reports the rusage of the client and every
descendant it waited for, so the figures belong to that run only. Why not wait4 on
the client directly: Linux keeps the peak RSS across exec, and a child forked (or
vforked) from this Python process starts with the harness's ~90 MB RSS, which would
be charged to every tool. Without GNU time we fall back to wait4 and say so.
Server CPU is read from ``/proc/PID/stat`` of the server processes and all their
descendants before and after the run.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class ClientJob:
    """One client process of a run, plus harness work that belongs to its timeline."""

    argv: list[str]
    env: Optional[dict] = None
    cwd: Optional[str] = None
    post: Optional[Callable[[], None]] = None  # timed, runs in the harness after exit
    stdout_path: Optional[Path] = None
    stderr_path: Optional[Path] = None


@dataclass
class ClientResult:
    returncode: Optional[int] = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    sys_seconds: float = 0.0  # the kernel's share of cpu_seconds
    peak_rss_mb: float = 0.0
    timed_out: bool = False
    killed_after: Optional[float] = None  # seconds: SIGKILLed by run_clients(kill_when=...)
    error: str = ""


GNU_TIME = "/usr/bin/time"
TIME_FORMAT = "%U %S %M %x"


def time_wrapper(stats: Path) -> list[str]:
    if os.access(GNU_TIME, os.X_OK):
        return [GNU_TIME, "-o", str(stats), "-f", TIME_FORMAT, "--"]
    return []


def _reap(pid: int, t0: float, res: ClientResult, job: ClientJob, stats: Optional[Path]) -> None:
    try:
        _, status, ru = os.wait4(pid, 0)
    except ChildProcessError as exc:  # reaped elsewhere: should not happen
        res.error = f"wait4: {exc}"
        res.seconds = time.monotonic() - t0
        return
    res.returncode = os.waitstatus_to_exitcode(status)
    res.cpu_seconds = ru.ru_utime + ru.ru_stime
    res.sys_seconds = ru.ru_stime
    res.peak_rss_mb = ru.ru_maxrss / 1024.0  # Linux: KiB; includes the harness (see above)
    if stats is not None:
        try:
            user, sys_, rss_kb, code = stats.read_text().strip().splitlines()[-1].split()
            res.cpu_seconds = float(user) + float(sys_)
            res.sys_seconds = float(sys_)
            res.peak_rss_mb = int(rss_kb) / 1024.0
            res.returncode = int(code)
        except (OSError, ValueError, IndexError):  # unreadable, torn or empty
            res.error = res.error or "no rusage from GNU time"
    if res.returncode == 0 and job.post is not None:
        try:
            job.post()
        except Exception as exc:  # noqa: BLE001 - recorded as a run error
            res.error = f"post: {type(exc).__name__}: {exc}"
    res.seconds = time.monotonic() - t0


def run_clients(
    jobs: list[ClientJob], timeout: float, kill_when: Optional[Callable[[], bool]] = None
) -> tuple[float, list[ClientResult]]:
    """Start all jobs at once; return (wall seconds until the last one ended, results).
    With `kill_when`, each client is SIGKILLed (the client itself, not GNU time around it,
    which still reports its rusage) once kill_when() is true while it runs."""
    results = [ClientResult() for _ in jobs]
    threads, pids, files = [], [], []
    t0 = time.monotonic()
    for job, res in zip(jobs, results):
        out = open(job.stdout_path, "wb") if job.stdout_path else subprocess.DEVNULL
        err = open(job.stderr_path, "wb") if job.stderr_path else subprocess.DEVNULL
        files += [f for f in (out, err) if f is not subprocess.DEVNULL]
        stats = Path(str(job.stdout_path) + ".rusage") if job.stdout_path else None
        wrapper = time_wrapper(stats) if stats else []
        try:
            # Popen only to fork/exec; the child is reaped with wait4 below, never by Popen.
            proc = subprocess.Popen(
                wrapper + job.argv,
                env=job.env,
                cwd=job.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        except OSError as exc:
            res.error = f"cannot start {job.argv[0]}: {exc}"
            res.returncode = 127
            continue
        proc.returncode = 0  # keep Popen.__del__ from reaping/warning
        pids.append(proc.pid)
        th = threading.Thread(
            target=_reap, args=(proc.pid, t0, res, job, stats if wrapper else None), daemon=True
        )
        th.start()
        threads.append((th, proc.pid, res, bool(wrapper)))
    deadline = t0 + timeout
    try:
        for th, pid, res, wrapped in threads:
            _await_client(th, pid, res, wrapped, t0, deadline, kill_when)
    except BaseException:  # interrupted: no client may outlive the harness
        for pid in pids:
            _kill_group(pid)
        raise
    wall = time.monotonic() - t0
    for f in files:
        f.close()
    return wall, results


def _await_client(th, pid: int, res: ClientResult, wrapped: bool, t0, deadline, kill_when) -> None:
    """Wait for one client (its reaper thread) until `deadline`; SIGKILL it once
    kill_when() holds (the client and all it started, but not GNU time, which reports the
    rusage); past the deadline end its process group."""
    while th.is_alive() and time.monotonic() < deadline:
        th.join(min(0.5, max(0.0, deadline - time.monotonic())))
        if kill_when is not None and th.is_alive() and res.killed_after is None and kill_when():
            res.killed_after = time.monotonic() - t0
            clients = _children_map().get(pid, []) if wrapped else [pid]
            for target in process_tree(clients):
                try:
                    os.kill(target, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            th.join(30)
    if th.is_alive():
        res.timed_out = True
        _kill_group(pid)
        th.join(30)


def _kill_group(pid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        time.sleep(1.0)


# -- server CPU ---------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def process_tree(roots: Iterable[int]) -> set[int]:
    kids = _children_map()
    seen: set[int] = set()
    todo = [p for p in roots if p]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo.extend(kids.get(pid, []))
    return seen


def cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """utime+stime (+ reaped children's) of each live pid, in seconds."""
    return {pid: stat[1] for pid, stat in _process_stats(pids).items()}


def _process_stats(pids: Iterable[int]) -> dict[int, tuple[str, float]]:
    """(name, CPU seconds as in cpu_seconds) of each live pid, from one read of its stat."""
    out = {}
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ...: after the comm, utime=11 stime=12 cutime=13 cstime=14
        head, tail = text.rsplit(")", 1)
        fields = tail.split()
        seconds = sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLK_TCK
        out[pid] = (head.split("(", 1)[1], seconds)
    return out


class ServerCpu:
    """Server CPU seconds spent between start() and stop() by a set of process trees;
    after stop(), `by_process` splits them by process name (e.g. weed, ghga-cli, radosgw)."""

    def __init__(self, roots: Iterable[int]):
        self.roots = list(roots)
        self.before: dict[int, float] = {}
        self.by_process: dict[str, float] = {}

    def start(self) -> None:
        self.before = cpu_seconds(process_tree(self.roots))

    def stop(self) -> float:
        by_process: dict[str, float] = {}
        total = 0.0
        for pid, (name, seconds) in _process_stats(process_tree(self.roots)).items():
            spent = seconds - self.before.get(pid, 0.0)
            by_process[name] = by_process.get(name, 0.0) + spent
            total += spent
        self.by_process = {name: round(s, 3) for name, s in sorted(by_process.items())}
        return round(total, 3)


SETTLE_CAP = 16 << 30
SETTLE_CHUNK = 64 << 20


def settle_memory(directory: Path, nbytes: int) -> int:
    """Writes and deletes a file of `nbytes` (at most SETTLE_CAP, at most half the available
    memory) in `directory`, right before a run: returns the bytes written.

    This VM's host takes idle and freed memory back (free page reporting, DAMON reclaim),
    and the first write to such a page costs a host fault, charged as system time to the
    process that writes it. Measured with dd, 4 GiB: 12.6-20 s of system time cold, 1.2-1.9 s
    right after the same amount was written, deleted and synced, 15.8 s again 15 s later.
    A download writes all its bytes into new page-cache pages, so without this a run paid
    whatever the runs before it happened to leave: the first after a pause the most. With
    it, every run starts right after the same write and delete, and measured, every run
    paid the first-touch cost in full (the rates are lower, and closer to each other, than
    on a machine that keeps its memory)."""
    available = _meminfo_bytes("MemAvailable")
    nbytes = min(nbytes, SETTLE_CAP, available // 2 if available else SETTLE_CAP)
    path = directory / "settle-memory.bin"
    zeros = bytes(SETTLE_CHUNK)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        left = nbytes
        while left > 0:
            left -= os.write(fd, zeros[: min(left, SETTLE_CHUNK)])
    finally:
        os.close(fd)
        path.unlink()
    return nbytes


def _meminfo_bytes(key: str) -> int:
    """A /proc/meminfo figure in bytes; 0 where there is none."""
    kib = _first_line("/proc/meminfo", key + ":").split()
    return int(kib[0]) * 1024 if kib else 0


def cpu_busy_seconds() -> dict[str, float]:
    """Busy seconds of each CPU since boot, from /proc/stat (all but idle and iowait): with
    servers and clients on separate CPUs, what each side cost, kernel work included (btrfs
    compression, the network stack), which no process's own CPU time shows."""
    busy = {}
    with open("/proc/stat") as stat:
        for line in stat:
            name, *ticks = line.split()
            if name.startswith("cpu") and name != "cpu":
                values = [int(t) for t in ticks]
                busy[name[3:]] = (sum(values[:8]) - values[3] - values[4]) / CLK_TCK
    return busy


# -- machine facts ------------------------------------------------------------


def source_digest(package_dir: Path) -> str:
    """Short SHA-256 over the client's sources: which version of ghga-cli a run measured."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(str(path.relative_to(package_dir)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _first_line(path: str, key: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                sep = ":" if ":" in line else "="
                return line.split(sep, 1)[1].strip().strip('"')
    except OSError:
        pass
    return ""


def _version(argv: list[str], env: Optional[dict] = None) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def machine_facts(
    work_dir: Path, tool_versions: dict[str, tuple[list[str], Optional[dict]]]
) -> dict:
    """The machine, and each tool's version: its (argv, environment) run once."""
    du = shutil.disk_usage(work_dir)
    return {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "os": _first_line("/etc/os-release", "PRETTY_NAME") or platform.platform(),
        "python": platform.python_version(),
        "cpu_model": _first_line("/proc/cpuinfo", "model name"),
        "cpus": os.cpu_count(),
        "mem_gib": round(_meminfo_bytes("MemTotal") / 2**30, 1),
        "disk_free_gib": round(du.free / 2**30, 1),
        "tools": {name: _version(argv, env) for name, (argv, env) in tool_versions.items()},
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
