"""The campaign as a luigi DAG: one task per run, one JSON result file per task.

``Campaign`` (a wrapper task) requires one ``BenchRun`` per point of the matrix. A run's
target is ``RESULTS/runs/KEY.json``, written atomically (temp file + fsync + rename)
after the run, so ``complete()`` is a file check that never touches the network:
running the campaign again runs only what is missing, and killing it loses at most the
run in flight. A run whose tool failed is a result too (``verified: false``, errors
counted); ``--rerun-failed`` deletes those before starting. Tasks run in-process with
one worker (two cores: a benchmark must own the machine), in the order of the matrix.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import signal
from pathlib import Path
from typing import Optional

import luigi

from . import config as config_mod
from .api import ApiError
from .files import size_label, write_json_atomic
from .fixtures import disk_bytes, remove_other_stores, store_identity
from .lab import Lab
from .measure import machine_facts, source_digest
from .paths import REPO, portable

log = logging.getLogger("benchmarks")

_LABS: dict[str, Lab] = {}


STOP_FILE = "stop"  # in the work dir: the campaign ends after the run in flight


class CampaignFailed(RuntimeError):
    pass


class CampaignStopped(CampaignFailed):
    """Stopped as asked, between two runs: run the same command again to go on."""


def _campaign(cfg: str, results: str, work: str) -> config_mod.Campaign:
    return config_mod.load(cfg, results_dir=results, work_dir=work)


def _lab(cfg: str, results: str, work: str) -> Lab:
    key = f"{cfg}|{results}|{work}"
    if key not in _LABS:
        _LABS[key] = Lab(_campaign(cfg, results, work), log=lambda m: log.info(m))
    return _LABS[key]


class BenchRun(luigi.Task):
    """One tool, backend, direction, size, client count and repetition."""

    config = luigi.Parameter()
    results_dir = luigi.Parameter()
    work_dir = luigi.Parameter()
    key = luigi.Parameter()
    order = luigi.IntParameter(significant=False, default=0)

    @property
    def priority(self):  # luigi runs higher priority first: keep the matrix order
        return 1_000_000 - self.order

    def output(self):
        return luigi.LocalTarget(str(Path(self.results_dir) / "runs" / f"{self.key}.json"))

    @property
    def stop_file(self) -> Path:
        return Path(self.work_dir) / STOP_FILE

    def complete(self):
        # once a stop is asked for, a run not started counts as done for this build, so that
        # luigi does not report the campaign's unfulfilled dependencies; the module's run()
        # counts the runs left by their results
        return super().complete() or self.stop_file.exists()

    def run(self):
        if self.stop_file.exists():  # asked after luigi picked this run: no result either
            log.info("%s not started: %s exists", self.key, self.stop_file)
            return
        lab = _lab(self.config, self.results_dir, self.work_dir)
        spec = lab.c.run(self.key)
        log.info("run %s", self.key)
        result = lab.execute(spec)
        write_json_atomic(Path(self.output().path), result)
        log.info(
            "%s: %.1f MB/s, %.2f s, verified=%s, errors=%d",
            self.key,
            result["mb_per_s"],
            result["seconds"],
            result["verified"],
            result["errors"],
        )


class Campaign(luigi.WrapperTask):
    config = luigi.Parameter()
    results_dir = luigi.Parameter()
    work_dir = luigi.Parameter()

    def requires(self):
        camp = _campaign(self.config, self.results_dir, self.work_dir)
        return [
            BenchRun(
                config=self.config,
                results_dir=self.results_dir,
                work_dir=self.work_dir,
                key=spec.key,
                order=spec.order,
            )
            for spec in camp.runs
        ]


def record_machine(camp: config_mod.Campaign) -> None:
    versions = {
        tool.kind: (tool.version_argv(), tool.version_env()) for tool in camp.tools.values()
    }
    versions.update({"weed": (["weed", "version"], None), "nginx": (["nginx", "-v"], None)})
    facts = machine_facts(camp.work_dir, versions)
    facts["campaign"] = camp.name
    facts["ghga_tasks_digest"] = source_digest(REPO / "ghga_tasks")
    facts["config"] = portable(str(camp.path), camp.work_dir)
    facts["config_text"] = camp.path.read_text()
    path = camp.results_dir / "machine.json"
    runs = camp.results_dir / "machine-history.jsonl"  # one line per invocation
    write_json_atomic(path, facts)
    with open(runs, "a") as f:
        f.write(json.dumps({k: v for k, v in facts.items() if k != "config_text"}) + "\n")


def rerun_failed(results_dir: Path) -> int:
    n = 0
    for path in (results_dir / "runs").glob("*.json"):
        try:
            ok = json.loads(path.read_text()).get("verified", False)
        except ValueError:
            ok = False
        if not ok:
            path.unlink()
            n += 1
    return n


def check_disk(camp: config_mod.Campaign, only: Optional[str]) -> None:
    """Refuse to start when the largest run still to do cannot fit the free disk. Kept
    stores and cached source files count as free: the estimate includes the copies and the
    source a run needs, and the campaign empties a store when a run needs the room (cached
    sources it drops for downloads only: an upload keeps other sizes' sources)."""
    todo = camp.left(only)
    kept = disk_bytes(camp.work_dir / "stack") + disk_bytes(camp.work_dir / "files")
    need, free = camp.disk_needed(todo), shutil.disk_usage(camp.work_dir).free + kept
    log.info(
        "disk: %.0f GiB free (%.0f of it in kept stores and sources), the largest run needs %.0f",
        free / 2**30,
        kept / 2**30,
        need / 2**30,
    )
    if todo and free < need:
        raise CampaignFailed(
            f"{camp.work_dir}: {free / 2**30:.0f} GiB free, but the largest run to do needs "
            f"{need / 2**30:.0f} GiB ({camp.stored_fraction} of its bytes stay on the disk: "
            "stored_fraction); free space or use another --work-dir"
        )


def _claim_disk(camp: config_mod.Campaign, only: Optional[str]) -> None:
    """Before a start: remove the stores this campaign cannot use, then check the disk."""
    camp.work_dir.mkdir(parents=True, exist_ok=True)
    identities = {s.backend: store_identity(camp, s.backend) for s in camp.runs}
    remove_other_stores(camp.work_dir / "stack", identities, log.info)
    check_disk(camp, only)


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM -> KeyboardInterrupt, so servers and the namespace are cleaned up."""
    prev = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, prev)


def seed(
    config_path,
    results_dir: Optional[str] = None,
    work_dir: Optional[str] = None,
    only: Optional[str] = None,
) -> dict[str, list[str]]:
    """Seed the download fixtures of the runs left (matching ``only``) and stop, keeping the
    store for the next ``run``: the set-up of a long campaign done ahead of the time its
    runs are measured in. One backend and one size at a time: a start of another backend
    empties the store, and a store keeps the fixtures of one size. Returns the fixture ids
    by the key of the run that reads the most of them."""
    camp = config_mod.load(config_path, results_dir=results_dir, work_dir=work_dir)
    specs = [s for s in camp.left(only) if s.direction == "download" and s.backend != "nginx"]
    if not specs:
        return {}
    kinds = sorted({f"{s.backend} {size_label(s.size)}" for s in specs})
    if len(kinds) > 1:
        raise CampaignFailed(
            f"downloads of {', '.join(kinds)} left: a store keeps one backend's fixtures of "
            "one size, so seed one at a time (--only)"
        )
    spec = max(specs, key=lambda s: s.file_count)
    _claim_disk(camp, only)
    lab = Lab(camp, log=lambda m: log.info(m))
    try:
        with _sigterm_interrupts():
            try:
                ids = lab.seed(spec)
            except ApiError as exc:
                raise CampaignFailed(f"{spec.key}: {exc}") from exc
    finally:
        lab.close(keep_store=bool(camp.left()))
    log.info("%s: %d fixtures ready", spec.key, len(ids))
    return {spec.key: ids}


def run(
    config_path,
    results_dir: Optional[str] = None,
    work_dir: Optional[str] = None,
    only: Optional[str] = None,
    rerun: bool = False,
) -> dict:
    camp = config_mod.load(config_path, results_dir=results_dir, work_dir=work_dir)
    cfg, res, work = str(camp.path), str(camp.results_dir), str(camp.work_dir)
    camp.results_dir.mkdir(parents=True, exist_ok=True)
    camp.work_dir.mkdir(parents=True, exist_ok=True)
    if rerun:
        log.info("removed %d failed results", rerun_failed(camp.results_dir))
    record_machine(camp)
    _claim_disk(camp, only)
    if only:
        tasks = [
            BenchRun(config=cfg, results_dir=res, work_dir=work, key=s.key, order=s.order)
            for s in camp.runs
            if re.search(only, s.key)
        ]
    else:
        tasks = [Campaign(config=cfg, results_dir=res, work_dir=work)]
    stop = camp.work_dir / STOP_FILE
    if stop.exists():  # asked of an earlier campaign
        stop.unlink()
        log.info("removed %s, left from before", stop)
    try:
        with _sigterm_interrupts():
            outcome = luigi.build(
                tasks, local_scheduler=True, workers=1, detailed_summary=True, log_level="WARNING"
            )
    finally:
        left = camp.left()  # runs left: keep the store and its fixtures for them
        for key in list(_LABS):
            _LABS.pop(key).close(keep_store=bool(left))
    summary = outcome.summary_text
    missing = [s.key for s in camp.left(only)]
    if missing and stop.exists():
        stop.unlink()
        raise CampaignStopped(
            f"stopped as asked by {stop} (now removed): {len(missing)} runs left; "
            "run the same command again to go on"
        )
    status = outcome.status.name
    if missing:
        raise CampaignFailed(
            f"{len(missing)} runs without a result ({status}):\n"
            + "\n".join(missing[:20])
            + "\n"
            + summary
        )
    return {
        "status": status,
        "results_dir": res,
        "runs": len(camp.runs),
        "left": len(left),
    }
