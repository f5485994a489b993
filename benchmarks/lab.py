"""Executing one run: servers, fixtures, clients, verification, clean-up.

One `Lab` lives in the campaign process (luigi runs the tasks in-process with one
worker) and keeps what is expensive across runs: the running backend, the cached
source files, and the seeded download fixtures of the current size (fixtures.py: kept
with their store across starts of the campaign, too). Switching backend stops the
previous one and deletes its store; switching size deletes the previous size's fixtures.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

from .api import acceptance_deadline, s3_client, s3_location, s3_object_sha256
from .client_reports import client_counts, json_tail, ledger_bytes
from .clientfs import ClientFs
from .config import SPARE, Campaign, RunSpec
from .cpus import CpuSplit
from .files import drop_source, sha256_of, size_label, source_file
from .fixtures import Fixtures, kept_record, store_identity
from .measure import (
    ClientJob,
    ServerCpu,
    cpu_busy_seconds,
    process_tree,
    run_clients,
    settle_memory,
    source_digest,
    time_wrapper,
)
from .netns import Netns
from .paths import REPO, portable, portable_text
from .stack import Stack, start_stack
from .tools import ClientCtx, FileRef, Tool


def warm(path: Path) -> None:
    """Read a file once so that it sits in the page cache (as far as memory allows)."""
    buf = bytearray(8 << 20)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


class ToolUnavailable(RuntimeError):
    pass


class Lab:
    def __init__(self, campaign: Campaign, log=print):
        self.c = campaign
        self.log = log
        self.stack: Optional[Stack] = None
        self.fixtures: Optional[Fixtures] = None  # of self.stack
        self.netns: Optional[Netns] = None
        self.cpus = CpuSplit.from_config(campaign.cpus)
        self.workqueue_mask = None
        self.client_fs = ClientFs.from_config(campaign.client_fs, campaign.work_dir)
        self.files_dir = campaign.work_dir / "files"
        self.runs_dir = campaign.work_dir / "runs"
        self.harness_cpus: Optional[set] = None
        self.warm_up_due = False  # the next run goes once unrecorded first (warm_up)
        try:
            self._set_up()
        except BaseException:
            self.close()  # what was set up is undone: CPU pinning, mounts, the namespace
            raise

    def _set_up(self) -> None:
        if self.cpus is not None:
            self.harness_cpus = os.sched_getaffinity(0)
            self.cpus.pin_harness()  # before any server starts: they inherit it
            self.workqueue_mask = self.cpus.pin_kernel_workqueues()
        if self.client_fs is not None:
            self.client_fs.up()
            self.files_dir = self.client_fs.mountpoint / "files"
            self.runs_dir = self.client_fs.mountpoint / "runs"
        if self.c.netns:
            rps = self.c.netns.get("rps") and self.cpus is not None  # config.py checks
            rx_cpus = self.cpus.masks() if rps else None
            self.netns = Netns(
                self.c.netns.get("name", "ghgab"),
                self.c.netns.get("rate", "1gbit"),
                self.c.netns.get("mtu", 1500),
                rx_cpus=rx_cpus,
            )
            self.netns.up()

    # -- lifetime -------------------------------------------------------------

    def close(self, keep_store: bool = False) -> None:
        """Undo the set-up, last step first; every step runs even when an earlier one fails
        (a busy mount must not leave the kernel's workqueues pinned). ``keep_store``: stop
        the backend leaving its store and fixtures for the next start (runs are left)."""
        with contextlib.ExitStack() as undo:
            if self.cpus is not None:
                undo.callback(self._unpin)
            if self.client_fs is not None:  # the cached sources stay in its image
                undo.callback(self.client_fs.down)
            undo.callback(shutil.rmtree, self.runs_dir, ignore_errors=True)
            undo.callback(self._netns_down)
            undo.callback(self._stop_stack, keep_store)

    def _unpin(self) -> None:
        self.cpus.restore_kernel_workqueues(self.workqueue_mask)
        if self.harness_cpus:
            CpuSplit.pin_threads(self.harness_cpus)

    def _netns_down(self) -> None:
        if self.netns is not None:
            self.netns.down()
            self.netns = None

    def _stop_stack(self, keep_store: bool = False) -> None:
        if self.stack is not None:
            keep_store = keep_store and self.stack.keeps_store
            kept = " (its store kept for the next start)" if keep_store else ""
            self.log(f"stopping {self.stack.backend}{kept}")
            self.stack.stop(keep_store=keep_store)
            self.stack = None
            self.fixtures = None

    def stack_for(self, backend: str, empty: bool = False) -> Stack:
        """The running stack of ``backend``: on the store a stopped campaign kept, unless
        ``empty``."""
        if self.stack is not None and self.stack.backend == backend:
            return self.stack
        self._stop_stack()
        cfg = dict(self.c.backends.get(backend, {}))
        if backend == "nginx":
            cfg["root"] = str(self.files_dir)
        data_dir = self.c.work_dir / "stack" / backend
        identity = store_identity(self.c, backend)
        record = None if empty else kept_record(data_dir, identity)
        self.log(f"starting {backend}" + (" on its kept store" if record else ""))
        self.stack = start_stack(backend, data_dir, cfg, kept=record is not None)
        self.warm_up_due = self.c.warm_up
        self.fixtures = Fixtures(self.stack, identity, record, self.log)
        return self.stack

    # -- fixtures ---------------------------------------------------------------

    def download_fixtures(self, size: int, n: int, src: Path, sha: str) -> list[str]:
        """n seeded, staged file ids holding ``src`` (same bytes, distinct objects)."""
        with self._all_cpus():
            return self.fixtures.ensure(size, n, src, sha, gc=self.c.gc != "never")

    def seed(self, spec: RunSpec) -> list[str]:
        """Seed the download fixtures ``spec`` reads without running it: set-up done ahead of
        the time the runs are measured in. Returns their file ids."""
        if spec.direction != "download" or spec.backend == "nginx":
            raise ValueError(f"{spec.key}: only downloads from an S3 backend have fixtures")
        self.stack_for(spec.backend)
        src, sha, seeded = self._source(spec)
        return self._fixtures_for(spec, src, sha, seeded)

    def _source(self, spec: RunSpec) -> tuple[Path, str, list[str]]:
        """The run's source file, its SHA-256 and the download fixtures of its size seeded
        already. The source is not made when they suffice (it may have been dropped for room)."""
        self._evict_sources(keep=spec.size)
        seeded = []
        if spec.direction == "download" and self.stack.backend != "nginx":
            with self._all_cpus():
                seeded = self.fixtures.usable(spec.size)
        if len(seeded) >= spec.file_count and spec.size in self.fixtures.sha:
            return self.files_dir / "unused", self.fixtures.sha[spec.size], seeded
        src, sha = source_file(self.files_dir, spec.size, self.c.content)
        return src, sha, seeded

    def _fixtures_for(self, spec: RunSpec, src: Path, sha: str, seeded: list[str]) -> list[str]:
        if len(seeded) < spec.file_count:  # seeding writes inbox, permanent and outbox copies
            self._empty_store_if_short(self.c.on_disk(3 * spec.total_bytes) + SPARE, "seeding")
        return self.download_fixtures(spec.size, spec.file_count, src, sha)

    def _all_cpus(self):
        """Set-up that is not measured (seeding) may use the clients' CPUs too."""
        if self.cpus is None or self.stack is None:
            return contextlib.nullcontext()
        stack = self.stack
        return self.cpus.everywhere(lambda: process_tree(stack.server_pids()))

    def _evict_sources(self, keep: int) -> None:
        """Big runs need the disk: drop cached source files of other sizes (regenerable)."""
        if keep < 2 << 30:
            return
        for meta in self.files_dir.glob("src-*.json"):
            try:
                size = json.loads(meta.read_text())["size"]
            except (OSError, ValueError, KeyError):
                continue
            if size != keep and not (self.stack and self.stack.backend == "nginx"):
                drop_source(meta)

    def _free(self) -> int:
        return shutil.disk_usage(self.c.work_dir).free

    def _empty_store_if_short(self, need: int, why: str) -> None:
        """Deleting objects does not reliably make room on the disk: BlueStore on a sparse
        file never gives freed blocks back, and SeaweedFS's filer deletes chunks in the
        background, after the vacuum has run. Start the S3 backend again with an empty store."""
        if self.stack is None or self.stack.backend not in ("ceph", "seaweedfs"):
            return
        free = self._free()
        if free >= need:
            return
        self.log(
            f"disk: {free / 2**30:.0f} GiB free, {why} needs "
            f"{need / 2**30:.0f}: restarting {self.stack.backend} with an empty store"
        )
        backend = self.stack.backend
        self._stop_stack()
        self.stack_for(backend, empty=True)

    def _room(self, spec: RunSpec) -> int:
        """Free disk a run needs: its outputs, or the server's copies of its uploads."""
        return self.c.on_disk(spec.total_bytes * (1 if spec.direction == "download" else 3)) + SPARE

    def _warm_up_emptied(self, spec: RunSpec) -> None:
        """The store was emptied to make room for `spec`: warm the backend just started with
        one client of the same run when the disk holds that and the run too, so that the run
        is not the first after a start; else it goes cold, and the log says so."""
        one = replace(spec, clients=1)
        if spec.clients > 1 and self._free() >= self._room(one) + self._room(spec):
            self.warm_up_due = False
            self.log(f"warm-up: {one.key} once, not recorded, on the store just emptied")
            self.execute(one)
        if self.warm_up_due:
            self.warm_up_due = False  # a warm-up after this run would come too late
            self.log(f"{spec.key} runs on a backend just started, not warmed up")

    def _make_room(self, spec: RunSpec) -> None:
        """A 16 GiB run on a ~80 GB disk: drop what can be made again when it doesn't fit.

        Download runs need room for their outputs (the source was only needed for seeding,
        except on nginx, which serves it); upload runs for the server's inbox and permanent
        copies and curl's part files, so the download fixtures go. If that is not enough,
        the stores other backends kept for a later start go, then this backend's whole store."""
        total = spec.total_bytes
        need = self._room(spec)
        if self._free() >= need:
            return
        if spec.direction == "upload":
            self.log(f"disk: dropping download fixtures to make room for {size_label(total)}")
            self.fixtures.drop(keep=-1, gc=self.c.gc != "never")
        elif self.stack.backend != "nginx":
            self.log(f"disk: dropping cached sources to make room for {size_label(total)}")
            for meta in self.files_dir.glob("src-*.json"):
                drop_source(meta)
        if self._free() < need:
            self._drop_idle_stores(f"a {size_label(total)} {spec.direction}")
        if spec.direction == "upload":
            self._empty_store_if_short(need, f"a {size_label(total)} upload")
        free = self._free()
        if free < need:
            self.log(f"disk: only {free / 2**30:.0f} GiB free, the run may need {need / 2**30:.0f}")

    def _drop_idle_stores(self, why: str) -> None:
        """Remove the stores of backends not running now, kept on the disk for their next
        start (which seeds its fixtures again): the check before the start counted them as
        room."""
        root = self.c.work_dir / "stack"
        running = self.stack.backend if self.stack else None
        idle = (
            [p for p in root.iterdir() if p.is_dir() and p.name != running] if root.is_dir() else []
        )
        for data_dir in sorted(idle):
            self.log(
                f"disk: removing the {data_dir.name} store kept for a later start, "
                f"{why} needs the room"
            )
            shutil.rmtree(data_dir, ignore_errors=True)

    # -- one run ----------------------------------------------------------------

    def execute(self, spec: RunSpec) -> dict:
        tool = self.c.tools[spec.tool]
        if tool.exe() is None:
            raise ToolUnavailable(f"{spec.tool}: {tool.kind} is not installed")
        stack = self.stack_for(spec.backend)
        if self.warm_up_due:
            self.warm_up_due = False
            self.log(f"warm-up: {spec.key} once, not recorded, on the {stack.backend} just started")
            self.execute(spec)
        src, sha, seeded = self._source(spec)
        run_dir = self.runs_dir / spec.key
        shutil.rmtree(run_dir, ignore_errors=True)
        shared = {"parts_dir": run_dir / "parts"}
        t_prep = time.monotonic()
        if spec.direction == "download":
            fids = self._fixtures_for(spec, src, sha, seeded)
        self._make_room(spec)
        if self.warm_up_due:  # started again with an empty store
            self._warm_up_emptied(spec)
        stack = self.stack
        ctxs = []
        for i in range(spec.clients):
            work = run_dir / f"client{i}"
            ctx = ClientCtx(
                index=i,
                direction=spec.direction,
                size=spec.size,
                src=src,
                sha256=sha,
                work=work,
                out_dir=work / "out",
                state_dir=work / "state",
                api=stack.api,
                s3=stack.s3,
                extra={"shared": shared, "compressing_fs": self.client_fs is not None},
            )
            for d in (ctx.out_dir, ctx.state_dir):
                d.mkdir(parents=True)
            for j in range(spec.files):
                ref = FileRef(name=f"file{j:03d}")
                suffix = f"-{j}" if spec.files > 1 else ""
                if spec.direction == "download":
                    ref.file_id = fids[i * spec.files + j]
                    ref.access_url = stack.api.access_url(ref.file_id)
                    if not tool.via_api:
                        ref.bucket, ref.key = s3_location(ref.access_url)
                elif tool.via_api:
                    stamp = int(time.time())
                    ref.file_id = f"bench-ul-{spec.order}-{spec.rep}-{i}{suffix}-{stamp}"
                    stack.api.register(ref.file_id, spec.size, sha)
                else:
                    ref.bucket = stack.s3["buckets"]["peers"]
                    ref.key = f"bench/{spec.key}/client{i}{suffix}"
                ctx.files.append(ref)
            tool.prepare(ctx)
            ctxs.append(ctx)
        jobs = []
        prefix = (self.cpus.client_prefix() if self.cpus else []) + (
            self.netns.prefix() if self.netns else []
        )
        for ctx in ctxs:
            jobs.append(
                ClientJob(
                    argv=prefix + tool.argv(ctx),
                    env=tool.env(ctx),
                    cwd=str(ctx.work),
                    post=ctx.post,
                    stdout_path=ctx.work / "stdout",
                    stderr_path=ctx.work / "stderr",
                )
            )
        if stack.backend == "nginx":
            warm(src)  # nginx reads it: every tool gets it from the page cache, not the first cold
        t_prep = time.monotonic() - t_prep
        t_settle = time.monotonic()
        os.sync()  # the previous run's dirty pages must not be written back during this one
        settled = settle_memory(run_dir, spec.total_bytes)  # the same state for every run
        t_settle = time.monotonic() - t_settle
        cpu = ServerCpu(stack.server_pids())
        cpu.start()
        busy0 = cpu_busy_seconds()
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        kill = None
        if tool.opts.get("kill_at"):
            wall, results, kill = self._killed_and_resumed(jobs, ctxs, spec, tool)
        else:
            wall, results = run_clients(jobs, self.c.run_timeout)
        server_cpu = cpu.stop()
        busy = {n: round(s - busy0.get(n, 0.0), 2) for n, s in cpu_busy_seconds().items()}
        shutil.rmtree(shared["parts_dir"], ignore_errors=True)  # room for the server's copies
        t_verify = time.monotonic()
        verified, messages = [], []
        for ctx, res in zip(ctxs, results):
            ok = res.returncode == 0 and not res.timed_out and not res.error
            if not ok:
                tail = (
                    (ctx.work / "stderr").read_text(errors="replace")[-600:]
                    if (ctx.work / "stderr").exists()
                    else ""
                )
                messages.append(
                    f"client {ctx.index}: rc={res.returncode} timed_out={res.timed_out} "
                    f"{res.error} {tail}".strip()
                )
            verified.append(ok and self._verify(tool, ctx, messages))
        t_verify = time.monotonic() - t_verify
        stdouts = [ctx.work / "stdout" for ctx in ctxs]
        counts = client_counts(stdouts) if tool.kind == "ghga-cli" else None
        t_clean = time.monotonic()
        self._clean(tool, ctxs, spec)
        t_clean = time.monotonic() - t_clean
        shutil.rmtree(run_dir, ignore_errors=True)
        total = spec.total_bytes
        per_client = [spec.size * spec.files / r.seconds / 1e6 for r in results if r.seconds > 0]
        return {
            "campaign": self.c.name,
            "key": spec.key,
            "order": spec.order,
            "backend": spec.backend,
            "api": getattr(stack.api, "kind", "?"),
            "direction": spec.direction,
            "size": spec.size,
            "size_label": size_label(spec.size),
            "tool": spec.tool,
            "tool_kind": tool.kind,
            "connections": tool.connections,
            "clients": spec.clients,
            "files": spec.files,
            "process_per_file": bool(tool.opts.get("loop")),
            "workers": tool.opts.get("workers"),
            "rep": spec.rep,
            "started": started,
            "seconds": round(wall, 3),
            "mb_per_s": round(total / wall / 1e6, 1),
            "per_client_mb_per_s": round(sum(per_client) / len(per_client), 1) if per_client else 0,
            "client_seconds": [round(r.seconds, 3) for r in results],
            "client_cpu_seconds": round(sum(r.cpu_seconds for r in results), 3),
            "client_sys_seconds": round(sum(r.sys_seconds for r in results), 3),
            "client_peak_rss_mb": round(max(r.peak_rss_mb for r in results), 1),
            "server_cpu_seconds": server_cpu,
            "server_cpu_by_process": cpu.by_process,
            "cpu_busy_seconds": busy,  # per CPU, everything on it during the run
            "ghga_cli_counts": counts,
            "errors": sum(1 for v in verified if not v),
            "error_messages": [portable_text(m, self.c.work_dir) for m in messages],
            "verified": all(verified),
            "content": self.c.content,
            "ghga_tasks_digest": source_digest((tool.sources or REPO) / "ghga_tasks"),
            "netns": self.netns.facts() if self.netns else None,
            "cpus": self.cpus.facts(process_tree(stack.server_pids())) if self.cpus else None,
            "client_fs": self.client_fs.facts() if self.client_fs else None,
            "store": stack.store_facts(),  # cumulative since the store started
            "rusage": "gnu-time" if time_wrapper(Path("x")) else "wait4 (includes the harness RSS)",
            "kill": kill,
            "memory_settled_bytes": settled,  # written and deleted just before (settle_memory)
            "harness_seconds": {
                "prepare": round(t_prep, 2),
                "settle": round(t_settle, 2),
                "verify": round(t_verify, 2),
                "clean": round(t_clean, 2),
            },
            "argv_example": [portable(a, self.c.work_dir) for a in jobs[0].argv[:3]]
            + (["..."] if len(jobs[0].argv) > 3 else []),
        }

    def _killed_and_resumed(self, jobs, ctxs, spec: RunSpec, tool: Tool):
        """The tool's `kill_at` run: SIGKILL the client once its ledgers in the state dir
        hold kill_at × size bytes, then start the same command again, which resumes. The
        run's time is both together; `kill` says what the kill cost."""
        if len(jobs) != 1 or spec.files != 1:
            raise ValueError(f"{spec.tool}: kill_at needs one client with one file")
        job, state_dir = jobs[0], ctxs[0].state_dir
        at = float(tool.opts["kill_at"]) * spec.size
        wire0 = self.netns.payload_bytes() if self.netns else None
        first = replace(
            job,
            post=None,
            stdout_path=job.stdout_path.with_name("killed.stdout"),
            stderr_path=job.stderr_path.with_name("killed.stderr"),
        )
        reached = lambda: ledger_bytes(state_dir) >= at  # noqa: E731
        wall1, (res1,) = run_clients([first], self.c.run_timeout, reached)
        at_kill = ledger_bytes(state_dir)
        wire1 = self.netns.payload_bytes() if self.netns else None
        wall2, (res2,) = run_clients([job], max(1.0, self.c.run_timeout - wall1))
        combined = replace(
            res2,
            seconds=wall1 + wall2,
            cpu_seconds=res1.cpu_seconds + res2.cpu_seconds,
            sys_seconds=res1.sys_seconds + res2.sys_seconds,
            peak_rss_mb=max(res1.peak_rss_mb, res2.peak_rss_mb),
            error=res2.error or ("" if res1.killed_after else "the client ended before the kill"),
        )
        resumed = json_tail(job.stdout_path).get("bytes_resumed")
        kill = {
            "at_fraction": float(tool.opts["kill_at"]),
            "killed_after_seconds": res1.killed_after,
            "ledger_bytes_at_kill": at_kill,
            "bytes_resumed": resumed,
            "resumed_run_seconds": round(wall2, 3),
        }
        if wire0 is not None and wire1 is not None:
            moved_before = wire1[spec.direction] - wire0[spec.direction]
            kill["payload_bytes_before_kill"] = moved_before
            if resumed is not None:  # what went again, plus the HTTP headers (a few KB)
                kill["payload_not_resumed"] = max(0, moved_before - resumed)
        return wall1 + wall2, [combined], kill

    def _verify(self, tool: Tool, ctx: ClientCtx, messages: list) -> bool:
        """Downloads: the SHA-256 of the output (one file, or a file per range), or of each
        output file of a many-files client. Uploads: every file accepted by the server, or
        each stored object's SHA-256 (S3 peers)."""
        try:
            if ctx.direction == "download":
                outputs = sorted(
                    p for p in ctx.out_dir.rglob("*") if p.is_file() and not p.name.startswith(".")
                )
                if len(ctx.files) == 1:
                    got = [sha256_of(outputs) if outputs else "no output file"]
                elif len(outputs) != len(ctx.files):
                    got = [f"{len(outputs)} output files for {len(ctx.files)} files"]
                else:
                    got = [sha256_of([p]) for p in outputs]
            elif tool.via_api:
                deadline = acceptance_deadline(ctx.size)
                got = [
                    ctx.sha256
                    if self.stack.api.wait_accepted(ref.file_id, ctx.sha256, deadline)
                    else f"{ref.file_id} not accepted by the server"
                    for ref in ctx.files
                ]
            else:
                client = s3_client(ctx.s3)
                got = [s3_object_sha256(client, ref.bucket, ref.key) for ref in ctx.files]
        except Exception as exc:  # noqa: BLE001 - a failed check is a result, not a crash
            got = [f"{type(exc).__name__}: {exc}"]
        wrong = [g for g in got if g != ctx.sha256]
        if wrong:
            messages.append(
                f"client {ctx.index}: verification failed for {len(wrong)} of "
                f"{len(ctx.files)} files: {wrong[0]}"
            )
            return False
        return True

    def _clean(self, tool: Tool, ctxs: list[ClientCtx], spec: RunSpec) -> None:
        if spec.direction != "upload":  # downloads delete nothing on the server
            return
        for ctx in ctxs:
            for ref in ctx.files:
                try:
                    if tool.via_api:
                        self.stack.api.delete(ref.file_id)
                    else:
                        s3_client(ctx.s3).delete_object(Bucket=ref.bucket, Key=ref.key)
                except Exception as exc:  # noqa: BLE001
                    self.log(f"clean-up of {ref.file_id or ref.key} failed: {exc}")
        if self.c.gc != "never":
            self.stack.gc()
