"""A campaign stopped with runs left keeps its store: the next start uses its download
fixtures again, resumes a seeding that was interrupted, and deletes what the run in flight
left. Real servers (`ghga-cli serve` with its embedded SeaweedFS), real ghga-cli processes,
one of them killed mid-upload."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time

import requests

from benchmarks import lab as lab_mod
from benchmarks.config import load
from benchmarks.files import source_file
from benchmarks.fixtures import RECORD, remove_other_stores
from benchmarks.paths import REPO
from benchmarks.servers import ghga_cli_argv, ghga_env
from ghga_tasks.units import MiB

SIZE = 32 * MiB


def new_lab(tmp_path, log: list) -> lab_mod.Lab:
    camp = load(
        REPO / "configs" / "benchmarks" / "quick.toml",
        results_dir=tmp_path / "results",
        work_dir=tmp_path / "work",
    )
    return lab_mod.Lab(camp, log=log.append)


def latest_upload_id(api, file_id: str) -> str:
    return api._call("GET", f"{api.upload_api}/files/{file_id}").json()["latest_upload_id"]


def start_seeding_and_kill_it(api, file_id: str, src, sha: str, state) -> None:
    """Seed as Fixtures does, but slowly, and SIGKILL ghga-cli once a part is recorded."""
    api.register(file_id, SIZE, sha)
    state.mkdir(parents=True)
    argv = ghga_cli_argv() + ["upload-by-id", "--api-url", api.upload_api]
    argv += ["--file-id", file_id, "--file-path", str(src), "--state-dir", str(state)]
    argv += ["--max-rate", "4MiB", "--parallel", "1", "--quiet"]
    proc = subprocess.Popen(argv, env=ghga_env(home=state), stderr=subprocess.PIPE)
    try:
        for _ in range(1200):  # a part at 4 MiB/s: a few seconds; bounded at two minutes
            ledgers = list(state.rglob("parts.jsonl"))
            if ledgers and len(ledgers[0].read_text().splitlines()) >= 2:  # header + a part
                break
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        else:
            raise AssertionError("ghga-cli recorded no part within two minutes")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)


def test_a_stopped_campaign_keeps_its_store_for_the_next_start(tmp_path):
    log: list = []
    lab = new_lab(tmp_path, log)
    try:
        lab.stack_for("seaweedfs")
        src, sha = source_file(lab.files_dir, SIZE, "random")
        (first,) = lab.download_fixtures(SIZE, 1, src, sha)
        api = lab.stack.api
        api.register("bench-ul-stray", SIZE, sha)  # as if an upload run was in flight
        state = lab.stack.data_dir / "seeding" / "bench-dl-32MiB-1"
        start_seeding_and_kill_it(api, "bench-dl-32MiB-1", src, sha, state)
        attempt = latest_upload_id(api, "bench-dl-32MiB-1")
        data_dir = lab.stack.data_dir
    finally:
        lab.close(keep_store=True)
    record = json.loads((data_dir / RECORD).read_text())
    assert record["fixtures"] == {str(SIZE): {"ids": [first], "sha256": sha}}

    log.clear()
    lab = new_lab(tmp_path, log)
    try:
        lab.stack_for("seaweedfs")
        api = lab.stack.api
        assert any("using the store kept" in m for m in log), log
        assert "bench-ul-stray" not in api.list_files()
        assert "bench-dl-32MiB-1" in api.list_files()  # its seeding resumes below
        ids = lab.download_fixtures(SIZE, 2, src, sha)
        assert ids == [first, "bench-dl-32MiB-1"]
        seeding = [m for m in log if m.startswith("seeding")]
        assert seeding == ["seeding bench-dl-32MiB-1 (resuming)"], log
        assert latest_upload_id(api, "bench-dl-32MiB-1") == attempt  # the same upload
        assert not state.exists()
        for fid in ids:  # byte-exact, through the pre-signed URL a client gets
            body = requests.get(api.access_url(fid), timeout=60).content
            assert hashlib.sha256(body).hexdigest() == sha
    finally:
        lab.close(keep_store=False)
    assert not data_dir.exists()


def test_stores_of_other_settings_are_removed(tmp_path):
    """A kept store is used only with the settings and content it was made with."""
    root = tmp_path / "stack"
    same = {"backend": "ceph", "settings": {"compression": "lz4"}, "content": "compressible"}
    for name, identity in [
        ("ceph", same),
        ("seaweedfs", {**same, "backend": "seaweedfs", "content": "random"}),
        ("nginx", None),
    ]:
        (root / name).mkdir(parents=True)
        if identity:
            (root / name / RECORD).write_text(json.dumps({"identity": identity, "fixtures": {}}))
    removed: list = []
    wanted = {
        "ceph": same,
        "seaweedfs": {**same, "backend": "seaweedfs", "content": "compressible"},
        "nginx": {"backend": "nginx", "settings": {}, "content": "compressible"},
    }
    remove_other_stores(root, wanted, removed.append)
    assert sorted(p.name for p in root.iterdir()) == ["ceph"]
    assert len(removed) == 2 and all("does not use" in m for m in removed)
