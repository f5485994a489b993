"""The campaign makes disk room for big runs: on Ceph by starting again with an empty store.

BlueStore on a sparse file keeps every block it ever wrote, so deleting objects frees
nothing on the disk; a 16 GiB upload after a 16 GiB download ran the disk full and the OSD
aborted. These tests drive `Lab`'s room-making with a recorded stack and a given free space.
"""

from __future__ import annotations

import pytest

from benchmarks import lab as lab_mod
from benchmarks.config import RunSpec, load  # noqa: E402
from benchmarks.paths import REPO
from ghga_tasks.units import GiB  # noqa: E402


class RecordedStack:
    keeps_store = True

    def __init__(self, backend: str, data_dir, events: list):
        self.backend, self.data_dir, self.events = backend, data_dir, events
        self.api = self
        events.append(("start", backend))

    def delete(self, fid: str) -> None:
        self.events.append(("delete", fid))

    def gc(self) -> None:
        self.events.append(("gc", self.backend))

    def stop(self, keep_store: bool = False) -> None:
        self.events.append(("stop", self.backend))


def seed_fixture(lab, size: int) -> None:
    fid = f"bench-dl-{size // GiB}GiB-0"
    lab.fixtures.ids[size], lab.fixtures.sha[size] = [fid], "0" * 64
    lab.fixtures.checked.add(fid)


@pytest.fixture
def lab(tmp_path, monkeypatch):
    camp = load(
        REPO / "configs" / "benchmarks" / "quick.toml",
        results_dir=tmp_path / "r",
        work_dir=tmp_path / "w",
    )
    events: list = []
    monkeypatch.setattr(
        lab_mod,
        "start_stack",
        lambda backend, data_dir, cfg, kept: RecordedStack(backend, data_dir, events),
    )
    camp.gc = "every-run"
    lab = lab_mod.Lab(camp, log=lambda msg: events.append(("log", msg)))
    lab.events = events
    return lab


def upload(size: int) -> RunSpec:
    return RunSpec(backend="ceph", direction="upload", size=size, tool="ghga-cli", clients=1, rep=1)


def test_ceph_upload_short_of_disk_restarts_with_empty_store(lab, monkeypatch):
    lab.stack_for("ceph")
    seed_fixture(lab, 16 * GiB)
    monkeypatch.setattr(lab, "_free", lambda: 20 * GiB)  # deleting frees nothing on Ceph
    lab._make_room(upload(16 * GiB))
    kinds = [e for e in lab.events if e[0] != "log"]
    assert kinds == [
        ("start", "ceph"),
        ("delete", "bench-dl-16GiB-0"),
        ("gc", "ceph"),
        ("stop", "ceph"),
        ("start", "ceph"),
    ]
    assert lab.fixtures.ids == {} and lab.stack.backend == "ceph"
    assert any("restarting ceph with an empty store" in e[1] for e in lab.events if e[0] == "log")


def test_ceph_upload_with_room_keeps_the_store(lab, monkeypatch):
    lab.stack_for("ceph")
    seed_fixture(lab, 16 * GiB)
    monkeypatch.setattr(lab, "_free", lambda: 60 * GiB)  # 3 x 16 GiB + spare fits
    lab._make_room(upload(16 * GiB))
    assert [e for e in lab.events if e[0] != "log"] == [("start", "ceph")]
    assert lab.fixtures.ids == {16 * GiB: ["bench-dl-16GiB-0"]}


def test_seaweedfs_upload_short_of_disk_restarts_too(lab, monkeypatch):
    lab.stack_for("seaweedfs")
    seed_fixture(lab, 16 * GiB)
    monkeypatch.setattr(lab, "_free", lambda: 29 * GiB)  # the filer deletes chunks later
    spec = RunSpec(
        backend="seaweedfs", direction="upload", size=16 * GiB, tool="curl", clients=1, rep=1
    )
    lab._make_room(spec)
    assert [e for e in lab.events if e[0] != "log"] == [
        ("start", "seaweedfs"),
        ("delete", "bench-dl-16GiB-0"),
        ("gc", "seaweedfs"),
        ("stop", "seaweedfs"),
        ("start", "seaweedfs"),
    ]
    assert any("only 29 GiB free" in e[1] for e in lab.events if e[0] == "log")


def test_download_short_of_disk_drops_sources_not_the_store(lab, monkeypatch):
    lab.stack_for("ceph")
    seed_fixture(lab, 16 * GiB)
    lab.files_dir.mkdir(parents=True)
    src = lab.files_dir / "src-random-16GiB.bin"
    src.write_bytes(b"x" * 10)
    (lab.files_dir / "src-random-16GiB.json").write_text('{"size": 17179869184}')
    monkeypatch.setattr(lab, "_free", lambda: 10 * GiB)
    spec = RunSpec(
        backend="ceph", direction="download", size=16 * GiB, tool="ghga-cli", clients=1, rep=1
    )
    lab._make_room(spec)
    assert [e for e in lab.events if e[0] != "log"] == [("start", "ceph")]
    assert lab.fixtures.ids == {16 * GiB: ["bench-dl-16GiB-0"]}
    assert not src.exists()


def test_a_run_short_of_disk_removes_the_store_another_backend_kept(lab, monkeypatch):
    """The check before the start counts a store kept for another backend as room: an nginx
    run that needs it removes that store, and keeps the source nginx serves."""
    kept = lab.c.work_dir / "stack" / "ceph"
    kept.mkdir(parents=True)
    (kept / "block").write_bytes(b"x" * 10)
    lab.stack_for("nginx")
    lab.files_dir.mkdir(parents=True)
    served = lab.files_dir / "src-random-16GiB.bin"
    served.write_bytes(b"x" * 10)
    (lab.files_dir / "src-random-16GiB.json").write_text('{"size": 17179869184}')
    frees = iter([10 * GiB, 10 * GiB, 60 * GiB])  # before, before the kept stores go, after
    monkeypatch.setattr(lab, "_free", lambda: next(frees))
    spec = RunSpec(
        backend="nginx", direction="download", size=16 * GiB, tool="curl", clients=1, rep=1
    )
    lab._make_room(spec)
    assert not kept.exists()
    assert served.exists() and (lab.c.work_dir / "stack").is_dir()
    logs = [e[1] for e in lab.events if e[0] == "log"]
    assert (
        "disk: removing the ceph store kept for a later start, a 16GiB download needs the room"
        in logs
    )
    assert not any("only" in m for m in logs)


def test_a_store_is_kept_when_the_run_fits_without_it(lab, monkeypatch):
    kept = lab.c.work_dir / "stack" / "ceph"
    kept.mkdir(parents=True)
    lab.stack_for("nginx")
    monkeypatch.setattr(lab, "_free", lambda: 30 * GiB)
    lab._make_room(RunSpec("nginx", "download", 16 * GiB, "curl", clients=1, rep=1))
    assert kept.is_dir()


def test_a_campaign_that_cannot_fit_the_disk_refuses_to_start(tmp_path):
    """Checked before anything starts: the largest run still to do, at stored_fraction."""
    import shutil
    import subprocess
    import sys

    free = shutil.disk_usage(tmp_path).free
    config = tmp_path / "too-big.toml"
    config.write_text(
        "[campaign]\nname = 'too-big'\nstored_fraction = 0.5\n"
        "[[matrix]]\nbackends = ['seaweedfs']\ndirections = ['download']\n"
        f"sizes = ['{free // GiB + 1}GiB']\ntools = ['ghga-cli']\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "run",
            str(config),
            "--results",
            str(tmp_path / "r"),
            "--work-dir",
            str(tmp_path / "w"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 1, proc.stderr
    assert "but the largest run to do needs" in proc.stderr and "stored_fraction" in proc.stderr
    assert not list((tmp_path / "r").glob("runs/*.json"))  # nothing ran
    assert not (tmp_path / "w" / "stack").exists()  # no server started


def test_cached_sources_count_as_room_before_the_start(tmp_path):
    """A run whose source is cached needs that room once, not twice: the check before the
    start counts cached sources (which the campaign drops when short) as free."""
    import os
    import shutil
    from types import SimpleNamespace

    from benchmarks.campaign import CampaignFailed, check_disk

    source = tmp_path / "files" / "src-random-1GiB.bin"
    source.parent.mkdir()
    chunk = os.urandom(1 << 20)
    with open(source, "wb") as f:
        for _ in range(256):  # 256 MiB of real blocks
            f.write(chunk)
        os.fsync(f.fileno())
    need = shutil.disk_usage(tmp_path).free + (128 << 20)
    camp = SimpleNamespace(work_dir=tmp_path, left=lambda only: ["run"], stored_fraction=1.0)
    camp.disk_needed = lambda todo: need
    check_disk(camp, None)  # 256 MiB cached beside the free disk: it fits

    source.rename(tmp_path / "not-a-cached-source.bin")  # the same blocks, no longer droppable
    with pytest.raises(CampaignFailed, match="but the largest run to do needs"):
        check_disk(camp, None)


def test_an_interrupted_run_leaves_no_client_running(tmp_path):
    """Ctrl-C or SIGTERM while clients run (here raised from the kill check): every client
    is ended before the interrupt goes on, so nothing keeps writing into the work dir."""
    import os
    import time
    from pathlib import Path

    from benchmarks.measure import ClientJob, run_clients

    pidfile = tmp_path / "pid"
    job = ClientJob(
        argv=["sh", "-c", f"echo $$ > {pidfile}; exec sleep 300"],
        stdout_path=tmp_path / "out",
        stderr_path=tmp_path / "err",
    )

    def interrupt_once_started() -> bool:
        if pidfile.exists() and pidfile.read_text().strip():
            raise KeyboardInterrupt
        return False

    with pytest.raises(KeyboardInterrupt):
        run_clients([job], timeout=600, kill_when=interrupt_once_started)
    pid = int(pidfile.read_text())
    for _ in range(1200):  # the reaper thread collects it after the kill (up to a minute)
        if not Path(f"/proc/{pid}").exists():
            break
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists(), os.popen(f"ps -o pid,stat,cmd -p {pid}").read()


@pytest.mark.parametrize("only", ["__32MiB__.*__c1__", None], ids=["only", "whole"])
def test_a_stop_file_ends_the_campaign_between_two_runs(tmp_path, monkeypatch, capfd, only):
    """`touch WORK_DIR/stop` while a run is in flight: that run is recorded, no other
    starts, the store is kept for the next start, the file is removed, and a stale stop
    file does not stop the next campaign. The whole campaign (luigi's wrapper task) stops
    as quietly as a subset: no traceback of unfulfilled dependencies."""
    from benchmarks import campaign as campaign_mod

    closed: list = []

    class StoppingLab:
        def __init__(self, camp, log):
            self.c = camp

        def execute(self, spec):
            (self.c.work_dir / campaign_mod.STOP_FILE).touch()  # asked during the first run
            return {"mb_per_s": 1.0, "seconds": 1.0, "verified": True, "errors": 0}

        def close(self, keep_store=False):
            closed.append(keep_store)

    monkeypatch.setattr(campaign_mod, "Lab", StoppingLab)
    config = REPO / "configs" / "benchmarks" / "quick.toml"
    results, work = tmp_path / "r", tmp_path / "w"
    work.mkdir()
    (work / campaign_mod.STOP_FILE).touch()  # stale: removed at the start
    with pytest.raises(campaign_mod.CampaignStopped, match="stopped as asked") as stopped:
        campaign_mod.run(config, str(results), str(work), only=only)
    assert len(list((results / "runs").glob("*.json"))) == 1
    assert "runs left; run the same command again" in str(stopped.value)
    assert not (work / campaign_mod.STOP_FILE).exists()
    assert closed == [True]
    out, err = capfd.readouterr()
    assert "Unfulfilled" not in out + err and "Traceback" not in out + err


def test_a_store_emptied_for_room_is_warmed_with_one_client_first(lab, monkeypatch):
    """The restart leaves a cold backend: one client of the same run goes first, unrecorded,
    when the disk holds that and the run; the run itself is then not the first."""
    lab.stack_for("ceph")
    warmed: list = []
    monkeypatch.setattr(lab, "execute", warmed.append)
    monkeypatch.setattr(lab, "_free", lambda: 40 * GiB)  # 3 GiB + 24 GiB + spares fit
    lab.warm_up_due = True  # as stack_for(empty=True) leaves it
    spec = RunSpec(backend="ceph", direction="upload", size=GiB, tool="s5cmd", clients=8, rep=2)
    lab._warm_up_emptied(spec)
    assert warmed == [RunSpec("ceph", "upload", GiB, "s5cmd", clients=1, rep=2)]
    assert not lab.warm_up_due  # the run after is not warmed again
    assert (
        "log",
        "warm-up: ceph__upload__1GiB__s5cmd__c1__r2 once, not recorded, on the store just emptied",
    ) in lab.events


@pytest.mark.parametrize("clients, free", [(8, 30 * GiB), (1, 200 * GiB)])
def test_without_room_for_a_warm_up_the_run_goes_cold_and_says_so(lab, monkeypatch, clients, free):
    lab.stack_for("ceph")
    warmed: list = []
    monkeypatch.setattr(lab, "execute", warmed.append)
    monkeypatch.setattr(lab, "_free", lambda: free)
    lab.warm_up_due = True
    spec = RunSpec("ceph", "upload", GiB, "ghga-cli", clients=clients, rep=1)
    lab._warm_up_emptied(spec)
    assert warmed == [] and not lab.warm_up_due
    assert ("log", f"{spec.key} runs on a backend just started, not warmed up") in lab.events
